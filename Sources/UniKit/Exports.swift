// The model, errors and JSON coding live in UniCore so that the `uni` CLI can
// use them without linking UniKit's runtime (SwiftNIO, the manager, QEMU
// control); `import UniKit` keeps giving them to every embedder.
@_exported import UniCore
