/**
 * `ciphervisor completion bash|zsh|fish`: shell completion generated from the command tree itself, so it never
 * falls behind a new command or flag. Install: `source <(ciphervisor completion bash)`, or write the fish output to
 * `~/.config/fish/completions/ciphervisor.fish`.
 */
import type { Command } from "commander";
import { parseChoice } from "../args.ts";
import type { CliIo } from "../io.ts";

interface Node {
  readonly path: string;
  readonly subcommands: string[];
  readonly options: string[];
}

/** Every command path with its subcommands and flags. */
export function commandTree(root: Command): Node[] {
  const out: Node[] = [];
  const walk = (cmd: Command, path: string) => {
    const subs = cmd.commands.filter((c) => c.name() !== "help");
    out.push({
      path,
      subcommands: subs.map((c) => c.name()),
      options: cmd.options
        .flatMap((o) => [o.long, o.short].filter((x): x is string => x !== undefined))
        .concat("--help"),
    });
    for (const c of subs) walk(c, path === "" ? c.name() : `${path} ${c.name()}`);
  };
  walk(root, "");
  return out;
}

function q(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

function bash(tree: readonly Node[]): string {
  const subs = tree.map((n) => `  [${q(n.path)}]=${q(n.subcommands.join(" "))}`).join("\n");
  const opts = tree.map((n) => `  [${q(n.path)}]=${q(n.options.join(" "))}`).join("\n");
  return `# ciphervisor bash completion: source <(ciphervisor completion bash)
declare -gA _ciphervisor_sub=(
${subs}
)
declare -gA _ciphervisor_opt=(
${opts}
)
_ciphervisor() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    if [[ " \${_ciphervisor_sub[$path]} " == *" $w "* ]]; then path="\${path:+$path }$w"; fi
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "\${_ciphervisor_opt[$path]}" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "\${_ciphervisor_sub[$path]}" -- "$cur"))
  fi
}
complete -F _ciphervisor ciphervisor
`;
}

function zsh(tree: readonly Node[]): string {
  return `#compdef ciphervisor
# ciphervisor zsh completion: source <(ciphervisor completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash(tree).replace(/^# .*\n/, "")}`;
}

function fish(tree: readonly Node[]): string {
  const lines = [
    "# ciphervisor fish completion: ciphervisor completion fish > ~/.config/fish/completions/ciphervisor.fish",
  ];
  for (const n of tree) {
    const words = n.path === "" ? [] : n.path.split(" ");
    const seen = words.map((w) => `__fish_seen_subcommand_from ${w}`);
    const notDeeper =
      n.subcommands.length > 0 ? [`not __fish_seen_subcommand_from ${n.subcommands.join(" ")}`] : [];
    const cond = [...(words.length === 0 ? ["__fish_use_subcommand"] : seen), ...notDeeper].join("; and ");
    if (n.subcommands.length > 0)
      lines.push(`complete -c ciphervisor -f -n ${q(cond)} -a ${q(n.subcommands.join(" "))}`);
    const leafCond = (words.length === 0 ? ["__fish_use_subcommand"] : seen).join("; and ");
    for (const o of n.options) {
      if (o.startsWith("--")) lines.push(`complete -c ciphervisor -n ${q(leafCond)} -l ${o.slice(2)}`);
      else lines.push(`complete -c ciphervisor -n ${q(leafCond)} -s ${o.slice(1)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export function registerCompletion(program: Command, io: CliIo): void {
  program
    .command("completion")
    .argument("<shell>", "bash, zsh or fish")
    .description("print a shell completion script")
    .action((shell: string) => {
      const s = parseChoice(shell, "shell", ["bash", "zsh", "fish"] as const);
      const tree = commandTree(program);
      io.out(s === "bash" ? bash(tree) : s === "zsh" ? zsh(tree) : fish(tree));
    });
}
