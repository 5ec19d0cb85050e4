import Foundation
import Testing
import Yams

/// The GitHub workflows are read as GitHub reads them (YAML), and hold
/// what docs/security.md promises: CI runs the README's test command on
/// every push; the nightly run builds, tests, audits the resolved
/// dependencies and fails on HIGH/CRITICAL trivy findings at 02:00 UTC.
@Suite("GitHub workflows")
struct WorkflowTests {
    static func text(_ relativePath: String) throws -> String {
        try String(contentsOfFile: Host.packageRoot + "/" + relativePath, encoding: .utf8)
    }

    static func workflow(_ name: String) throws -> Node {
        let document = try #require(try Yams.compose(yaml: try text(".github/workflows/\(name)")), "\(name) is empty")
        #expect(document.mapping != nil, "\(name) is not a YAML mapping")
        return document
    }

    /// The jobs by name.
    static func jobs(_ workflow: Node) -> [(name: String, job: Node)] {
        (workflow["jobs"]?.mapping.map(Array.init) ?? []).map { ($0.key.string ?? "", $0.value) }
    }

    /// Every step of every job, with its job's name.
    static func steps(_ workflow: Node) -> [(job: String, step: Node)] {
        jobs(workflow).flatMap { name, job in (job["steps"]?.array() ?? []).map { (name, $0) } }
    }

    /// The command under "One command runs every test" in the README.
    static func readmeTestCommand() throws -> String {
        let readme = try text("README.md")
        let section = try #require(readme.range(of: "**One command** runs every test"), "the README lost its test command")
        let block = try #require(readme[section.upperBound...].range(of: "```sh\n"))
        let line = readme[block.upperBound...].prefix { $0 != "\n" }
        return String(line)
    }

    /// The triggers, looked up as the node GitHub reads (a YAML 1.1 reader
    /// of plain values would take a bare `on` for `true`).
    static func triggers(_ workflow: Node) throws -> Node {
        try #require(workflow["on"], "no 'on' triggers")
    }

    @Test("CI runs the README's test command on pushes to main and pull requests; .ci/run calls the same")
    func ci() throws {
        let workflow = try Self.workflow("ci.yml")
        let on = try Self.triggers(workflow)
        #expect(on["push"]?["branches"]?.array(of: String.self) == ["main"])
        #expect(on["pull_request"] != nil)
        let command = try Self.readmeTestCommand()
        #expect(command == "scripts/test.sh")
        #expect(Self.steps(workflow).contains { $0.step["run"]?.string == command })
        #expect(try Self.text(".ci/run").contains("exec \(command)"))
    }

    @Test("nightly at 02:00 UTC: build and tests, osv-scanner on Package.resolved, trivy fs failing on HIGH/CRITICAL")
    func nightly() throws {
        let workflow = try Self.workflow("nightly.yml")
        let schedule = try Self.triggers(workflow)["schedule"]?.array() ?? []
        #expect(schedule.compactMap { $0["cron"]?.string } == ["0 2 * * *"])
        let steps = Self.steps(workflow)
        let command = try Self.readmeTestCommand()
        #expect(steps.contains { $0.step["run"]?.string == command })
        func uses(_ prefix: String) -> (job: String, step: Node)? {
            steps.first { $0.step["uses"]?.string?.hasPrefix(prefix) == true }
        }

        let osv = try #require(uses("google/osv-scanner-action/"))
        #expect(osv.step["with"]?["scan-args"]?.string?.contains("--lockfile=Package.resolved") == true)
        // The job that audits must receive the resolved file it reads.
        #expect(steps.contains { $0.job == osv.job && $0.step["uses"]?.string?.hasPrefix("actions/download-artifact@") == true })
        #expect(steps.contains { $0.step["run"]?.string?.contains("swift package resolve") == true })

        let trivy = try #require(uses("aquasecurity/trivy-action@"))
        let settings = try #require(trivy.step["with"])
        #expect(settings["scan-type"]?.string == "fs")
        #expect(Set((settings["severity"]?.string ?? "").split(separator: ",").map(String.init)) == ["HIGH", "CRITICAL"])
        #expect(settings["exit-code"]?.string == "1")
    }

    @Test("every job has a timeout, every action is pinned to a version, and neither workflow may write to the repository")
    func hygiene() throws {
        for name in ["ci.yml", "nightly.yml"] {
            let workflow = try Self.workflow(name)
            #expect(workflow["permissions"]?["contents"]?.string == "read", "\(name)")
            for (job, value) in Self.jobs(workflow) {
                #expect(value["timeout-minutes"]?.int != nil, "\(name): job \(job) has no timeout")
            }
            for (job, step) in Self.steps(workflow) {
                guard let uses = step["uses"]?.string else { continue }
                #expect(uses.split(separator: "@").count == 2, "\(name): \(job) uses \(uses) without a version")
            }
        }
    }
}
