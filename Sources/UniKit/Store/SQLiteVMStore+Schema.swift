import Foundation
import GRDB

extension SQLiteVMStore {
    /// The suffix a `state.json` gets once the SQLite store imported it.
    public static let migratedSuffix = ".migrated"

    /// The named migrations, in order. Never edit one that shipped: add
    /// the next, and have it bump `PRAGMA user_version` to the new
    /// ``schemaVersion`` (docs/architecture.md, "The SQLite store").
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: vm, file_import") { db in
            try db.execute(sql: """
                CREATE TABLE vm (
                    id             TEXT    NOT NULL PRIMARY KEY,  -- 12 hex digits, the folder vms/<id>/
                    name           TEXT    NOT NULL UNIQUE,
                    state          TEXT    NOT NULL,              -- created, starting, running, stopping, stopped
                    schema_version INTEGER NOT NULL,              -- of the record (VM.currentSchemaVersion)
                    image          TEXT    NOT NULL,
                    pid            INTEGER,                       -- QEMU's, while it runs
                    exit_code      INTEGER,
                    stop_reason    TEXT,
                    start_count    INTEGER NOT NULL,
                    restart_count  INTEGER NOT NULL,              -- starts by the restart policy
                    health         TEXT    NOT NULL,              -- none, starting, healthy, unhealthy
                    created_at     TEXT    NOT NULL,              -- RFC 3339, UTC, milliseconds, as in the record
                    started_at     TEXT,
                    finished_at    TEXT,
                    last_health_check_at TEXT,
                    last_restart_at      TEXT,
                    updated_at     TEXT    NOT NULL,              -- when this row was last written
                    record         TEXT    NOT NULL               -- the VM record JSON, as state.json holds it: what is loaded
                );
                CREATE TABLE file_import (
                    id          INTEGER PRIMARY KEY,
                    imported_at TEXT    NOT NULL,
                    imported    INTEGER NOT NULL,                 -- state.json files inserted
                    skipped     INTEGER NOT NULL                  -- state.json files whose id the database already held
                );
                PRAGMA user_version = 1;
                """)
        }
        return migrator
    }()
}

/// One row of table `vm`. Every column but `record` mirrors a field of
/// `record` for queries; none is read back.
struct VMRow: Codable, FetchableRecord, PersistableRecord, Sendable {
    static let databaseTableName = "vm"

    var id: String
    var name: String
    var state: String
    var schemaVersion: Int
    var image: String
    var pid: Int32?
    var exitCode: Int32?
    var stopReason: String?
    var startCount: Int
    var restartCount: Int
    var health: String
    var createdAt: String
    var startedAt: String?
    var finishedAt: String?
    var lastHealthCheckAt: String?
    var lastRestartAt: String?
    var updatedAt: String
    var record: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, state, schemaVersion = "schema_version", image, pid, exitCode = "exit_code", stopReason = "stop_reason"
        case startCount = "start_count", restartCount = "restart_count", health
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        case lastHealthCheckAt = "last_health_check_at", lastRestartAt = "last_restart_at", updatedAt = "updated_at", record
    }

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let name = Column(CodingKeys.name)
        static let record = Column(CodingKeys.record)
    }

    /// The row of `vm`, its record encoded as `state.json` is.
    init(_ vm: VM, updatedAt: Date) throws {
        id = vm.id.rawValue
        name = vm.name
        state = vm.state.rawValue
        schemaVersion = vm.schemaVersion
        image = vm.config.image
        pid = vm.pid
        exitCode = vm.exitCode
        stopReason = vm.stopReason?.rawValue
        startCount = vm.startCount
        restartCount = vm.restartCount
        health = vm.health.rawValue
        createdAt = RFC3339.string(from: vm.createdAt)
        startedAt = vm.startedAt.map(RFC3339.string(from:))
        finishedAt = vm.finishedAt.map(RFC3339.string(from:))
        lastHealthCheckAt = vm.lastHealthCheckAt.map(RFC3339.string(from:))
        lastRestartAt = vm.lastRestartAt.map(RFC3339.string(from:))
        self.updatedAt = RFC3339.string(from: updatedAt)
        record = String(decoding: try JSONCoding.makeEncoder(pretty: true).encode(vm), as: UTF8.self)
    }

    /// Inserts the row or replaces the one with its id. Hand-written:
    /// GRDB's `upsert` reacts to any unique constraint, and would overwrite
    /// another VM's row that holds the same name.
    func upsert(_ db: Database) throws {
        try db.execute(sql: VMRow.upsertSQL, arguments: StatementArguments(databaseDictionary))
    }

    private static let upsertSQL: String = {
        let names = CodingKeys.allCases.map(\.rawValue)
        let updates = names.filter { $0 != CodingKeys.id.rawValue }.map { "\($0) = excluded.\($0)" }
        return "INSERT INTO vm (\(names.joined(separator: ", "))) VALUES (\(names.map { ":" + $0 }.joined(separator: ", "))) "
            + "ON CONFLICT(id) DO UPDATE SET \(updates.joined(separator: ", "))"
    }()

    /// The id of the other row that holds this row's name, after a
    /// unique constraint refused it.
    func nameHolder(_ db: Database) throws -> String {
        try String.fetchOne(db, VMRow.select(Columns.id).filter(Columns.name == name)) ?? "?"
    }
}
