/// One serial gate per VM: the operations on a VM run one at a time, in the
/// order they arrived.
///
/// An actor alone does not give that: it runs one call at a time only
/// between suspension points, so two `start`s that both checked the state
/// before their first `await` would both launch QEMU. Every operation that
/// changes a VM enters its gate first and checks the state inside it.
///
/// Not thread-safe by itself: ``VMManager`` owns it and uses it on its actor.
struct OperationGates {
    /// Present while the gate of a VM is held; the queue of those waiting for it.
    private var queues: [VMID: [CheckedContinuation<Void, Never>]] = [:]

    /// Takes the gate of `id` when it is free.
    /// - Returns: whether the caller now holds the gate.
    mutating func tryEnter(_ id: VMID) -> Bool {
        guard queues[id] == nil else { return false }
        queues[id] = []
        return true
    }

    /// Queues `waiter` for the gate of `id` (held by someone else).
    mutating func enqueue(_ id: VMID, _ waiter: CheckedContinuation<Void, Never>) {
        queues[id, default: []].append(waiter)
    }

    /// Gives the gate of `id` up: to the next waiter, whom the caller must
    /// resume, or back to free when nobody waits.
    mutating func leave(_ id: VMID) -> CheckedContinuation<Void, Never>? {
        guard var queue = queues[id], !queue.isEmpty else {
            queues[id] = nil
            return nil
        }
        let next = queue.removeFirst()
        queues[id] = queue
        return next
    }

    /// Whether anyone holds the gate of `id`.
    func isHeld(_ id: VMID) -> Bool { queues[id] != nil }
}
