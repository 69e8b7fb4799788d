# The memory cipher's AES-NI addon (xex.c; docs/sev-interface.md §13.2). Built by scripts/build-native.mjs with
# npm's bundled node-gyp against the running node's own headers. x64 only: AES-NI and the SSE intrinsics are x86
# instructions; on any other architecture the target is empty ("type": "none") and src/crypto/xex.ts runs its
# WebAssembly path instead.
{
  "targets": [
    {
      "target_name": "xex",
      "conditions": [
        [
          "target_arch == 'x64'",
          {
            "sources": ["xex.c"],
            # -maes and -msse4.1 let the compiler emit AESENC and friends (the addon checks CPUID before it exports
            # anything that runs them). -O2 in place of the -O3 of node's common.gypi: the kernel is intrinsics with
            # explicit unrolling already, and -O2 is what it was measured with.
            "cflags": ["-maes", "-msse4.1", "-std=gnu11", "-Wall", "-Wextra"],
            "configurations": { "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] } },
            "xcode_settings": { "OTHER_CFLAGS": ["-maes", "-msse4.1", "-std=gnu11"], "GCC_OPTIMIZATION_LEVEL": "2" }
          },
          { "type": "none" }
        ]
      ]
    }
  ]
}
