/// A VM record a store holds but cannot read: a truncated or corrupt
/// `state.json`, a record written by a newer `unid`, a row of `vms.db`
/// whose JSON does not decode.
///
/// It is not a VM: it cannot be started, stopped or removed through unid,
/// which leaves it on disk as it found it for a person to inspect, repair or
/// delete (docs/vm-record.md, "Records that cannot be read"). `unid` reports
/// each one in its log at start, `GET /v1/records/unreadable` returns them,
/// and `uni ps -a` shows them in state `broken` with their path.
public struct UnreadableRecord: Codable, Sendable, Hashable, CustomStringConvertible {
    /// The VM id the store files it under (the folder `vms/<id>/`, the
    /// row's `id`), when that is a well-formed id.
    public var id: VMID?
    /// The file that holds it: `vms/<id>/state.json`, or the database `vms/vms.db`.
    public var path: String
    /// The row's `id` column in the database at ``path`` (SQLite store
    /// only), as stored: it may be no well-formed id.
    public var rowID: String?
    /// Why it cannot be read, in one line (`not a valid VM record (not valid JSON)`).
    public var reason: String

    /// Creates a report of one unreadable record.
    /// - Parameters:
    ///   - id: the id the store files it under, when well-formed.
    ///   - path: the record file or the database.
    ///   - rowID: the row's id in the database at `path`; `nil` for a file.
    ///   - reason: why it cannot be read, one line.
    public init(id: VMID?, path: String, rowID: String? = nil, reason: String) {
        self.id = id
        self.path = path
        self.rowID = rowID
        self.reason = reason
    }

    /// Where it is, for a person: the file, or `<database> vm <row id>`.
    public var location: String {
        guard let rowID else { return path }
        return "\(path) vm \(rowID.escapingControlCharacters)"
    }

    /// One log line: `<location>: <reason>; skipped and left as it is`.
    public var description: String { "\(location): \(reason); skipped and left as it is" }

    enum CodingKeys: String, CodingKey {
        case id, path, rowID = "row_id", reason
    }
}
