import Synchronization
import UniKit

/// A ``CgroupController`` that touches no filesystem: it records every
/// call, and can be told to fail, to report an OOM kill, to report
/// pressure, or to act as a host without cgroups.
public final class RecordingCgroupController: CgroupController {
    /// One call, in order.
    public enum Call: Sendable, Hashable {
        case create(VMID, ResourceQuota)
        case update(VMID, ResourceQuota)
        case oomKilled(VMID)
        case remove(VMID)
        case removeLeftover(VMID)
    }

    public let mechanism: CgroupMechanism
    public let unavailableReason: String?
    private let state = Mutex(State())

    private struct State {
        var calls: [Call] = []
        var live: Set<VMID> = []
        var createError: UniError?
        var updateError: UniError?
        var oomKilled: Set<VMID> = []
        var pressure: ResourcePressure?
    }

    /// A controller that acts as `mechanism` (`none` needs a `reason`).
    public init(mechanism: CgroupMechanism = .v2, unavailableReason: String? = nil) {
        self.mechanism = mechanism
        self.unavailableReason = mechanism == .none ? (unavailableReason ?? "no cgroups in this test") : nil
    }

    /// Every call so far.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The VMs whose cgroup exists now (created, not removed).
    public var liveCgroups: Set<VMID> { state.withLock { $0.live } }

    /// Makes every later ``create(for:quota:)`` throw `error` (`nil`: succeed again).
    public func failCreates(with error: UniError?) { state.withLock { $0.createError = error } }

    /// Makes every later ``update(_:quota:)`` throw `error` (`nil`: succeed again).
    public func failUpdates(with error: UniError?) { state.withLock { $0.updateError = error } }

    /// Makes ``oomKilled(_:)`` answer true for `id`'s cgroup.
    public func reportOOMKill(of id: VMID) { state.withLock { _ = $0.oomKilled.insert(id) } }

    /// The pressure every placement reports (`nil`: none).
    public func reportPressure(_ pressure: ResourcePressure?) { state.withLock { $0.pressure = pressure } }

    /// The folder a VM's cgroup is said to be in.
    public static func directory(of id: VMID) -> String { "/recorded/uni/\(id)" }

    public func create(for id: VMID, quota: ResourceQuota) throws -> CgroupPlacement {
        try state.withLock { state in
            state.calls.append(.create(id, quota))
            if let error = state.createError { throw error }
            if mechanism == .none { throw UniError(.unavailable, "cgroups are not available: \(unavailableReason ?? "")") }
            state.live.insert(id)
            return CgroupPlacement(vmID: id, mechanism: mechanism, directories: [RecordingCgroupController.directory(of: id)],
                                   pressureDirectory: RecordingCgroupController.directory(of: id))
        }
    }

    public func update(_ placement: CgroupPlacement, quota: ResourceQuota) throws {
        try state.withLock { state in
            state.calls.append(.update(placement.vmID, quota))
            if let error = state.updateError { throw error }
        }
    }

    public func oomKilled(_ placement: CgroupPlacement) -> Bool {
        state.withLock { state in
            state.calls.append(.oomKilled(placement.vmID))
            return state.oomKilled.contains(placement.vmID)
        }
    }

    public func pressure(of placement: CgroupPlacement) -> ResourcePressure? {
        state.withLock { $0.pressure }
    }

    public func remove(_ placement: CgroupPlacement) throws {
        state.withLock { state in
            state.calls.append(.remove(placement.vmID))
            state.live.remove(placement.vmID)
        }
    }

    public func removeLeftover(of id: VMID) {
        state.withLock { state in
            state.calls.append(.removeLeftover(id))
            state.live.remove(id)
        }
    }
}
