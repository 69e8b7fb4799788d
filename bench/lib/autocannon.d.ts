/** The part of autocannon's API the bench uses (the package ships no types). */
declare module "autocannon" {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    headers?: Record<string, string>;
    /** A sequence each connection cycles through (method, path, headers, body, setupRequest, onResponse). */
    requests?: readonly Record<string, unknown>[];
  }
  export default function autocannon(options: Options): Promise<unknown>;
}
