#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One thing that happened to a VM: a state transition, an exit, a health
/// change, a restart. Served by `uni events` and `GET /v1/events` from a
/// bounded history that survives a daemon restart (docs/observability.md).
public struct VMEvent: Codable, Sendable, Hashable {
    /// What happened.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// A state change: `from`, `to` (`none` before create, `removed` after rm).
        case transition
        /// The VM's process ended: `reason`, `exit_code`, `signal`, `error`.
        case exit
        /// Its health changed: `from`, `to`, `error`.
        case health
        /// Its restart policy planned a restart: `attempt`, `delay_ms`, `reason`.
        case restart
        /// Its restart policy stopped restarting it: `policy`.
        case restartGaveUp = "restart_gave_up"
        /// Its limits changed (`uni update`): the new `cpu_shares`,
        /// `memory_max_bytes`, `disk_iops`, `disk_bps` given, and `live`
        /// (whether the running VM took them at once).
        case update
    }

    /// Increases by one per event, across daemon restarts.
    public var sequence: UInt64
    /// When it happened.
    public var time: Date
    /// The VM.
    public var vmID: VMID
    /// Its name then.
    public var vmName: String
    /// What happened.
    public var kind: Kind
    /// The details, by name (see ``Kind``).
    public var attributes: [String: String]

    /// An event.
    public init(sequence: UInt64, time: Date, vmID: VMID, vmName: String, kind: Kind, attributes: [String: String] = [:]) {
        self.sequence = sequence
        self.time = time
        self.vmID = vmID
        self.vmName = vmName
        self.kind = kind
        self.attributes = attributes
    }

    enum CodingKeys: String, CodingKey {
        case sequence, time, vmID = "vm_id", vmName = "vm_name", kind = "type", attributes
    }
}

/// Which events a reader wants: a time window and VMs (by name or id).
public struct VMEventFilter: Sendable, Hashable {
    /// Events at or after this time.
    public var since: Date?
    /// Events at or before this time.
    public var until: Date?
    /// Events of these VMs (names or full ids); empty: every VM.
    public var vms: Set<String>

    /// A filter; the default takes everything.
    public init(since: Date? = nil, until: Date? = nil, vms: Set<String> = []) {
        self.since = since
        self.until = until
        self.vms = vms
    }

    /// Whether `event` passes.
    public func matches(_ event: VMEvent) -> Bool {
        if let since, event.time < since { return false }
        if let until, event.time > until { return false }
        return vms.isEmpty || vms.contains(event.vmName) || vms.contains(event.vmID.rawValue)
    }

    /// Parses `--since`/`--until`: an RFC 3339 time, or a duration before
    /// `now` (`10m` is ten minutes ago).
    /// - Throws: ``UniError`` (`invalidArgument`) naming the flag, the text and the allowed forms.
    public static func time(_ text: String, flag: String, now: Date = Date()) throws -> Date {
        if let date = RFC3339.date(from: text) { return date }
        guard let ago = try? DurationParser.parse(text, flag: flag) else {
            throw UniError.invalid("invalid \(flag) '\(text.escapingControlCharacters)': use an RFC 3339 time (2026-11-25T10:00:00Z) or a duration ago (10m, 2h; at most 24h)")
        }
        return now.addingTimeInterval(-Double(ago.wholeMilliseconds) / 1000)
    }

    /// Parses one `--filter` (`vm=NAME`), adding it to this filter.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the text and the allowed form.
    public mutating func add(_ filter: String) throws {
        let parts = filter.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, parts[0] == "vm", !parts[1].isEmpty else {
            throw UniError.invalid("invalid --filter '\(filter.escapingControlCharacters)': use vm=NAME or vm=ID")
        }
        try addVM(String(parts[1]))
    }

    /// Adds a VM to select by name or full id (the history keeps removed
    /// VMs, so there is nothing to resolve a prefix against).
    /// - Throws: ``UniError`` (`invalidArgument`) when `vm` is neither.
    public mutating func addVM(_ vm: String) throws {
        guard VMID.isWellFormed(vm) || (try? VMConfig.validate(name: vm)) != nil else {
            throw UniError.invalid("invalid vm '\(vm.escapingControlCharacters)': give a VM name or a full 12-digit id")
        }
        vms.insert(vm)
    }
}
