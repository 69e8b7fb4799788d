/**
 * The dashboard's build: Preact with esbuild's automatic JSX runtime (no plugin), one hashed script and stylesheet
 * under assets/, nothing inlined (the server's Content-Security-Policy allows scripts and styles from its own origin
 * only). scripts/build.mjs runs this into dist/web/; `npx vite web` serves it for development.
 */
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  publicDir: false,
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    target: "es2022",
    assetsDir: "assets",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
});
