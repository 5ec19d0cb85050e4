import Foundation
import Logging
import Tracing

/// What every lifecycle operation shares: the transition check, its
/// message, and the span and counter around it.
extension VMManager {
    /// Checks the transition table before an operation.
    /// - Throws: ``UniError`` (`invalidState`) with the message for `operation`.
    static func require(_ vm: VM, canBecome next: VMState, for operation: String) throws {
        guard vm.state.canTransition(to: next) else {
            throw UniError(.invalidState, stateMessage(vm, wanted: operation))
        }
    }

    static func stateMessage(_ vm: VM, wanted operation: String) -> String {
        switch (operation, vm.state) {
        case ("start", .running), ("start", .starting): return "vm \(vm.name) is already \(vm.state)"
        case ("start", .stopping): return "vm \(vm.name) is stopping: wait for it to stop, then start it"
        case (_, .starting): return "vm \(vm.name) is starting: wait until it runs, then \(operation) it"
        default: return "vm \(vm.name) is not running (state: \(vm.state))"
        }
    }

    /// Runs one operation as a `vm.lifecycle` span with a `vm.<kind>` child,
    /// counts it when it succeeds, and marks both spans failed when it throws.
    func traced(_ kind: LifecycleOperation, reference: String?, _ body: () async throws -> VM) async throws -> VM {
        let tracer = backends.tracer
        let parent = tracer.startSpan(SpanNames.lifecycle, context: ServiceContext.current ?? .topLevel)
        parent.attributes[SpanNames.operationAttribute] = kind.rawValue
        let child = tracer.startSpan(SpanNames.operation(kind), context: parent.context)
        defer {
            child.end()
            parent.end()
        }
        do {
            let vm = try await ServiceContext.$current.withValue(child.context) { try await body() }
            for span in [parent, child] {
                span.attributes[SpanNames.vmIDAttribute] = vm.id.rawValue
                span.attributes[SpanNames.vmNameAttribute] = vm.name
                span.attributes[SpanNames.vmImageAttribute] = vm.config.image
            }
            telemetry?.recordOperation(kind)
            return vm
        } catch {
            let code = (error as? UniError)?.code.description ?? "internal"
            let known = reference.flatMap { reference in
                (try? table.resolve(reference)).flatMap { table[$0] } ?? (try? VMID(reference)).flatMap { table.removedRecord($0) }
            }
            for span in [parent, child] {
                if let known {
                    span.attributes[SpanNames.vmIDAttribute] = known.id.rawValue
                    span.attributes[SpanNames.vmNameAttribute] = known.name
                    span.attributes[SpanNames.vmImageAttribute] = known.config.image
                }
                span.attributes[SpanNames.errorTypeAttribute] = code
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: (error as? UniError)?.message ?? "\(error)"))
            }
            throw error
        }
    }

    // MARK: Gates

    /// Runs `body` holding the gate of the VM `reference` names. The VM is
    /// looked up again inside the gate: one removed while this call waited
    /// is `notFound`, never brought back.
    func withGate<Result: Sendable>(_ reference: String, _ body: (VMID, VM) async throws -> Result) async throws -> Result {
        let id = try table.resolve(reference)
        return try await withGate(id) {
            guard let vm = table[id] else { throw UniError(.notFound, "no such vm: \(reference)") }
            return try await body(id, vm)
        }
    }

    /// Runs `body` holding the gate of `id`, after the operations queued before it.
    func withGate<Result: Sendable>(_ id: VMID, _ body: () async throws -> Result) async throws -> Result {
        if !gates.tryEnter(id) {
            await withCheckedContinuation { gates.enqueue(id, $0) }
        }
        defer { gates.leave(id)?.resume() }
        return try await body()
    }
}
