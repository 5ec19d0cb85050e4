import Foundation
import Testing
import UniKit
import UniKitTesting

@Suite("VM event history")
struct EventLogTests {
    static let web = try! VMID("0123456789ab")
    static let db = try! VMID("abcdef012345")

    @Test("events survive a reopen with their sequence; memory keeps the newest; the disk holds at most two files of capacity lines")
    func persistence() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        do {
            let log = EventLog(path: path, capacity: 4)
            for index in 0..<10 {
                log.record(.transition, vmID: Self.web, vmName: "web", attributes: ["from": "a", "to": "\(index)"], time: start.addingTimeInterval(Double(index)))
            }
            #expect(log.events().map(\.sequence) == [7, 8, 9, 10])
        }
        let lines = { (file: String) in (try? String(contentsOfFile: file, encoding: .utf8))?.split(separator: "\n").count ?? 0 }
        #expect(lines(path) <= 4 && lines(path + ".1") <= 4)
        let reopened = EventLog(path: path, capacity: 4)
        #expect(reopened.events().map(\.sequence) == [7, 8, 9, 10])
        #expect(reopened.events().last?.attributes["to"] == "9")
        #expect(reopened.record(.exit, vmID: Self.web, vmName: "web").sequence == 11)
    }

    @Test("a torn or foreign line is skipped and counted; the rest loads")
    func tornLine() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        do {
            let log = EventLog(path: path)
            log.record(.transition, vmID: Self.web, vmName: "web")
            log.record(.exit, vmID: Self.web, vmName: "web")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"sequence\": 3, \"ti".utf8))
        try handle.close()
        let log = EventLog(path: path)
        #expect(log.events().map(\.kind) == [.transition, .exit])
        #expect(log.unreadableLines == 1)
    }

    @Test("filters by VM name or id and by time; follow gives the history, then new events, with nothing lost between")
    func filterAndFollow() async throws {
        let log = EventLog(path: nil)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        log.record(.transition, vmID: Self.web, vmName: "web", time: start)
        log.record(.transition, vmID: Self.db, vmName: "db", time: start.addingTimeInterval(10))
        log.record(.exit, vmID: Self.web, vmName: "web", time: start.addingTimeInterval(20))
        #expect(log.events(matching: VMEventFilter(vms: ["web"])).map(\.kind) == [.transition, .exit])
        #expect(log.events(matching: VMEventFilter(vms: [Self.db.rawValue])).map(\.vmName) == ["db"])
        #expect(log.events(matching: VMEventFilter(since: start.addingTimeInterval(5), until: start.addingTimeInterval(15))).map(\.vmName) == ["db"])

        var iterator = log.follow(matching: VMEventFilter(vms: ["web"])).makeAsyncIterator()
        #expect(await iterator.next()?.sequence == 1)
        #expect(await iterator.next()?.sequence == 3)
        log.record(.health, vmID: Self.db, vmName: "db")
        log.record(.restart, vmID: Self.web, vmName: "web")
        #expect(await iterator.next()?.kind == .restart)
        log.finishFollowers()
        #expect(await iterator.next() == nil)
    }

    @Test("--since and --until: RFC 3339 or a duration ago; anything else is named", arguments: [
        ("2026-11-25T10:00:00Z", 1_795_600_800.0),
        ("2026-11-25T10:00:00.250Z", 1_795_600_800.25),
        ("10m", 1_800_000_000.0 - 600),
    ])
    func times(text: String, expected: Double) throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try VMEventFilter.time(text, flag: "--since", now: now).timeIntervalSince1970 == expected)
    }

    @Test("bad --since and --filter values are refused with what is allowed")
    func badValues() {
        let since = #expect(throws: UniError.self) { try VMEventFilter.time("yesterday", flag: "--since") }
        #expect(since?.message == "invalid --since 'yesterday': use an RFC 3339 time (2026-11-25T10:00:00Z) or a duration ago (10m, 2h; at most 24h)")
        var filter = VMEventFilter()
        let bad = #expect(throws: UniError.self) { try filter.add("name=web") }
        #expect(bad?.message == "invalid --filter 'name=web': use vm=NAME or vm=ID")
        #expect(throws: Never.self) { try filter.add("vm=web") }
        #expect(filter.vms == ["web"])
    }

    @Test("after a torn last line, the next daemon's first event starts on a fresh line and survives")
    func tornLineSwallowsNextEvent() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let id = try VMID("0123456789ab")
        do {
            let log = EventLog(path: path)
            log.record(.transition, vmID: id, vmName: "web")
        }
        // A crash mid-write.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"sequence\": 2, \"ti".utf8))
        try handle.close()
        do {
            let log = EventLog(path: path)                 // the next daemon
            log.record(.exit, vmID: id, vmName: "web", attributes: ["reason": "daemon_recovered"])
            log.record(.transition, vmID: id, vmName: "web")
        }
        let third = EventLog(path: path)
        #expect(third.events().map(\.kind) == [.transition, .exit, .transition],
                "got \(third.events().map(\.kind)); unreadable lines: \(third.unreadableLines)")
    }

    @Test("a line with sequence UInt64.max is skipped, not a crash at start")
    func hugeSequence() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/events.jsonl"
        let line = #"{"sequence":18446744073709551615,"time":"2026-11-26T00:52:37.120Z","vm_id":"0123456789ab","vm_name":"web","type":"exit","attributes":{}}"#
        try (line + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let log = EventLog(path: path)
        #expect(log.events().isEmpty && log.unreadableLines == 1)
        #expect(log.record(.exit, vmID: try VMID("0123456789ab"), vmName: "web").sequence == 1)
    }
}
