/**
 * A button for an action the roles may lack: disabled (never hidden) with the missing permission named next to
 * it, so a viewer sees what exists and what to ask for.
 */
import type { ComponentChildren } from "preact";
import { availability, type DashboardAction } from "../lib/permissions.ts";
import { useSession } from "../session.tsx";

let nextId = 0;

export function ActionButton(props: {
  action: DashboardAction;
  onClick: () => void;
  disabled?: boolean;
  children: ComponentChildren;
  class?: string;
}) {
  const { me } = useSession();
  const a = availability(me.permissions, props.action);
  const id = `why-${props.action}-${nextId++}`;
  return (
    <span class="action">
      <button
        type="button"
        class={props.class ?? "secondary"}
        disabled={!a.allowed || props.disabled === true}
        aria-describedby={a.allowed ? undefined : id}
        title={a.reason}
        onClick={props.onClick}
        data-action={props.action}
      >
        {props.children}
      </button>
      {a.allowed ? null : (
        <small id={id} class="needs">
          {a.reason}
        </small>
      )}
    </span>
  );
}
