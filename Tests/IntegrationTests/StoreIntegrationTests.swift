import Foundation
import Testing
import UniCLI
import UniHTTP
@testable import UniKit
import UniKitTesting

extension Integration {
    /// `unid --vm-store` as a real process: switching stores keeps the VMs,
    /// and a corrupt database stops the daemon.
    @Suite("unid --vm-store", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct StoreIntegrationTests {
        /// Starts `unid` on `dataDir` with `--vm-store store` and waits until `uni` reaches it.
        func startDaemon(dataDir: String, store: String) async throws -> ChildProcess {
            let unid = try Host.startDaemon(dataDir: dataDir, arguments: ["--vm-store", store])
            // A socket file can outlive the previous daemon: wait for an answer.
            let answered = await Host.eventually { (try? Host.runProduct("uni", ["--data-dir", dataDir, "ps"]).status) == 0 }
            #expect(answered, "unid --vm-store \(store) did not answer: \(unid.standardError)")
            return unid
        }

        func stop(_ unid: ChildProcess) async {
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0), "\(unid.standardError)")
        }

        func inspect(_ reference: String, dataDir: String) throws -> VM {
            let result = try Host.runProduct("uni", ["--data-dir", dataDir, "inspect", reference])
            #expect(result.status == 0, "\(result.stderr)")
            return try JSONCoding.makeDecoder().decode([VM].self, from: Data(result.stdout.utf8))[0]
        }

        @Test("a VM made under --vm-store file is listed under sqlite (vms.db made, state.json renamed), and its later runs show after going back to file")
        func switchingStores() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            let dataDirectory = DataDirectory(root: dir.path)

            let fileDaemon = try await startDaemon(dataDir: dir.path, store: "file")
            defer { fileDaemon.send(SIGKILL) }
            let run = try Host.runProduct("uni", ["--data-dir", dir.path, "run", "--name", "keep", kernel, "--cmdline", "exit=3"])
            #expect(run.status == 0, "\(run.stderr)")
            let id = try VMID(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(await Host.eventually { (try? inspect("keep", dataDir: dir.path).state) == .stopped })
            await stop(fileDaemon)
            let record = dataDirectory.files(of: id).recordPath
            #expect(FileManager.default.fileExists(atPath: record))

            let sqliteDaemon = try await startDaemon(dataDir: dir.path, store: "sqlite")
            defer { sqliteDaemon.send(SIGKILL) }
            let listed = try Host.runProduct("uni", ["--data-dir", dir.path, "ps", "-a", "--output", "json"])
            #expect(listed.status == 0, "\(listed.stderr)")
            let vms = try JSONCoding.makeDecoder().decode([VM].self, from: Data(listed.stdout.utf8))
            #expect(vms.map(\.id) == [id])
            #expect(vms.first?.exitCode == 3)
            #expect(FileManager.default.fileExists(atPath: dataDirectory.databasePath))
            #expect(!FileManager.default.fileExists(atPath: record))
            #expect(FileManager.default.fileExists(atPath: record + ".migrated"))
            // A second run, recorded in the database only.
            let start = try Host.runProduct("uni", ["--data-dir", dir.path, "start", "keep"])
            #expect(start.status == 0, "\(start.stderr)")
            #expect(await Host.eventually { (try? inspect("keep", dataDir: dir.path)).map { $0.state == .stopped && $0.startCount == 2 } ?? false })
            await stop(sqliteDaemon)

            let backDaemon = try await startDaemon(dataDir: dir.path, store: "file")
            defer { backDaemon.send(SIGKILL) }
            let back = try inspect("keep", dataDir: dir.path)
            #expect(back.startCount == 2)
            #expect(back.exitCode == 3)
            #expect(FileManager.default.fileExists(atPath: record))
            #expect(!FileManager.default.fileExists(atPath: dataDirectory.databasePath))
            let backups = try FileManager.default.contentsOfDirectory(atPath: dataDirectory.vmsDirectory).filter { $0.hasPrefix("vms.db.exported-") }
            #expect(backups.count == 1)
            await stop(backDaemon)
        }

        @Test("uni ps -a lists a truncated state.json and a garbage vms.db row as broken with their path, beside the good VM; uni rm refuses them; they stay")
        func unreadableRecords() async throws {
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            let dataDirectory = DataDirectory(root: dir.path)
            try dataDirectory.prepare()
            let files = FileVMStore(dataDirectory: dataDirectory)
            var good = VM(id: VMID.random(), name: "good", config: VMConfig(name: "good", image: "/k"), imageKind: .kernel, createdAt: Date())
            good.state = .stopped
            let broken = VM(id: VMID.random(), name: "broken", config: VMConfig(name: "broken", image: "/k"), imageKind: .kernel, createdAt: Date())
            try await files.save(good)
            try await files.save(broken)
            let path = files.recordPath(broken.id)
            let whole = try #require(FileManager.default.contents(atPath: path))
            try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: path))
            func uni(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) { try Host.runProduct("uni", ["--data-dir", dir.path] + arguments) }

            let unid = try await startDaemon(dataDir: dir.path, store: "file")
            defer { unid.send(SIGKILL) }
            let table = try uni("ps", "-a")
            #expect(table.status == 0, "\(table.stderr)")
            let lines = table.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            #expect(lines.count == 3, "\(table.stdout)")
            #expect(lines.dropFirst().first?.prefix(4) == [good.id.rawValue, "good", "k", "stopped"], "\(table.stdout)")
            #expect(lines.last == [broken.id.rawValue, "-", path, "broken", "-", "-", "-"], "\(table.stdout)")
            #expect(try uni("ps").stdout.split(separator: "\n").count == 1)
            #expect(try uni("ps", "-aq").stdout == "\(good.id)\n\(broken.id)\n")
            let json = try uni("ps", "-a", "--output", "json")
            let entries = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(entries?.count == 2)
            #expect(entries?.last?["state"] as? String == "broken")
            #expect(entries?.last?["path"] as? String == path)
            #expect(entries?.last?["reason"] as? String == "not a valid VM record (not valid JSON)")
            let rm = try uni("rm", "-f", broken.id.rawValue)
            #expect(rm.status == 1)
            #expect(rm.stderr == "error: vm \(broken.id) cannot be used: its record \(path) cannot be read (not a valid VM record (not valid JSON)); "
                    + "unid leaves it as it is: repair it or delete it by hand (rm -r '\((path as NSString).deletingLastPathComponent)'), then restart unid\n")
            // The log line names the path (read from unid's stderr as it arrives).
            #expect(await Host.eventually { unid.standardError.contains("skipping unreadable vm record") && unid.standardError.contains(path) },
                    "\(unid.standardError)")
            await stop(unid)
            #expect(FileManager.default.contents(atPath: path) == whole.prefix(whole.count / 2))

            // The same under sqlite: the good record moves into vms.db, the
            // truncated file stays as it is (still listed), and a row whose JSON is garbage is broken too.
            let database = try SQLiteVMStore(path: dataDirectory.databasePath)
            var garbage = good
            garbage.id = VMID.random()
            garbage.name = "garbage"
            try await database.save(garbage)
            let garbageID = garbage.id.rawValue
            try await database.writer.write { db in try db.execute(sql: "UPDATE vm SET record = 'garbage' WHERE id = ?", arguments: [garbageID]) }
            let sqlite = try await startDaemon(dataDir: dir.path, store: "sqlite")
            defer { sqlite.send(SIGKILL) }
            let rows = try uni("ps", "-a").stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(rows.count == 4, "\(rows)")
            #expect(rows.dropFirst().first?.prefix(2) == [good.id.rawValue, "good"], "\(rows)")
            #expect(Set(rows.suffix(2)) == [[garbage.id.rawValue, "-", dataDirectory.databasePath, "broken", "-", "-", "-"],
                                            [broken.id.rawValue, "-", path, "broken", "-", "-", "-"]], "\(rows)")
            await stop(sqlite)
        }

        @Test("a corrupt vms.db stops unid with one line and a hint, under either store, and stays as it was")
        func corruptDatabase() throws {
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            let dataDirectory = DataDirectory(root: dir.path)
            try dataDirectory.prepare()
            let garbage = Data(repeating: 0x5A, count: 4096)
            try garbage.write(to: URL(fileURLWithPath: dataDirectory.databasePath))
            for store in ["sqlite", "file"] {
                let result = try Host.runProduct("unid", ["--data-dir", dir.path, "--accel", "tcg", "--vm-store", store])
                #expect(result.status == 1, "\(store): \(result.stderr)")
                #expect(result.stderr.hasPrefix("error: vm database '\(dataDirectory.databasePath)' is corrupt (file is not a database); unid does not recreate it: restore it from a backup, or move it aside"), "\(store): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(store): \(result.stderr)")
            }
            #expect(FileManager.default.contents(atPath: dataDirectory.databasePath) == garbage)
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/unid.sock"))
        }

        @Test("a --vms-cpu-weight out of 1-10000 is a usage error naming the value and the range; nothing is made")
        func badVMsCPUWeight() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            for bad in ["0", "10001", "lots"] {
                let result = try Host.runProduct("unid", ["--data-dir", dir.path + "/data", "--vms-cpu-weight", bad])
                #expect(result.status == 2, "\(result.stderr)")
                #expect(result.stderr.contains("invalid --vms-cpu-weight '\(bad)': use a whole number from 1 to 10000"), "\(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/data"))
        }

        @Test("an unknown --vm-store is a usage error naming the value and the choices")
        func badFlag() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let result = try Host.runProduct("unid", ["--data-dir", dir.path, "--vm-store", "postgres"])
            #expect(result.status == 2)
            #expect(result.stderr.hasPrefix("error: "))
            #expect(result.stderr.contains("invalid --vm-store 'postgres': expected one of file, sqlite"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/vms"))
        }
    }
}
