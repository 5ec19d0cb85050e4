import Foundation
import Testing
@testable import UniKit
import UniKitTesting

/// A long-running unid must not keep anything of a VM once it is removed
/// (docs/performance.md, "Soak": the heap grew ~2 KB a cycle while a
/// record of each removed VM's last exit stayed behind).
@Suite("VMManager keeps nothing of a removed VM")
struct VMManagerMemoryTests {
    @Test("after run, stop and rm, no per-VM table of the manager names the VM")
    func removedVMLeavesNothing() async throws {
        let harness = try VMManagerTests.Harness()
        try await harness.run { manager in
            var ids: [VMID] = []
            for index in 0..<3 {
                let vm = try await manager.run(VMConfig(name: "vm-\(index)", image: harness.image))
                _ = try await manager.stop(vm.name)
                try await manager.remove(vm.name, force: false)
                ids.append(vm.id)
            }
            let kept = await manager.perVMStateKeys()
            for id in ids {
                #expect(!kept.contains(id), "vm \(id) is still held")
            }
        }
    }
}

extension VMManager {
    /// Every VM id some per-VM table of the manager holds, bar the bounded
    /// history of removed records kept for `wait`.
    func perVMStateKeys() -> Set<VMID> {
        var keys = Set(consoles.keys).union(runtimes.keys).union(exitWaiters.keys).union(recordedExits.keys)
        keys.formUnion(unsaved.keys)
        keys.formUnion(pendingRestarts.keys)
        keys.formUnion(restartStreaks.keys)
        return keys
    }
}
