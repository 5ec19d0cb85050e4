import Foundation
import Testing
import UniKit

@Suite("Parsing the values people type")
struct ParsingTests {
    @Test("byte sizes accept K/M/G/T with optional iB/B", arguments: [
        ("64M", UInt64(64 << 20)), ("1G", UInt64(1 << 30)), ("512K", UInt64(512 << 10)), ("1024", UInt64(1024)),
        ("2GiB", UInt64(2 << 30)), ("16mb", UInt64(16 << 20)), ("1T", UInt64(1) << 40),
    ])
    func byteSizes(text: String, bytes: UInt64) throws {
        #expect(try ByteSize(parsing: text).bytes == bytes)
    }

    @Test("a bad byte size names the text and the allowed form", arguments: ["", "12X", "M", "-5M", "1.5G", "99999999999999999999T"])
    func badByteSizes(text: String) {
        #expect(throws: UniError.self) { try ByteSize(parsing: text) }
        do { _ = try ByteSize(parsing: text) } catch let error as UniError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("'\(text)'"))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test("byte sizes print in their shortest exact unit")
    func byteSizeDescription() {
        #expect(ByteSize.mebibytes(64).description == "64M")
        #expect(ByteSize(bytes: 1 << 30).description == "1G")
        #expect(ByteSize(bytes: 1536 << 10).description == "1536K")
        #expect(ByteSize(bytes: 100).description == "100")
    }

    @Test("port mappings: HOST:GUEST, /udp, and an address prefix")
    func portMappings() throws {
        #expect(try PortMapping(parsing: "8080:80") == PortMapping(hostPort: 8080, guestPort: 80))
        #expect(try PortMapping(parsing: "53:53/udp") == PortMapping(hostPort: 53, guestPort: 53, transportProtocol: .udp))
        #expect(try PortMapping(parsing: "127.0.0.1:8080:80/tcp") == PortMapping(hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80))
        #expect(try PortMapping(parsing: "8080:80/TCP").description == "8080:80/tcp")
    }

    @Test("a bad port mapping names the text and the allowed form", arguments: ["80", "0:80", "8080:70000", "a:b", "8080:80/sctp", "1.2.3:80:80", "8080:80:90:100", ":80"])
    func badPortMappings(text: String) throws {
        let error = try #require(throws: UniError.self) { try PortMapping(parsing: text) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("invalid port mapping '\(text)'"))
        #expect(error.message.contains("HOST:GUEST"))
    }

    @Test("environment variables need a shell name and a one-line value")
    func environment() throws {
        #expect(try EnvironmentVariables.parse("PORT=80") == ("PORT", "80"))
        #expect(try EnvironmentVariables.parse("A_B=x=y") == ("A_B", "x=y"))
        #expect(try EnvironmentVariables.parse("EMPTY=") == ("EMPTY", ""))
        let noEquals = try #require(throws: UniError.self) { try EnvironmentVariables.parse("PORT") }
        #expect(noEquals.message == "invalid environment variable 'PORT': expected KEY=VALUE")
        let badName = try #require(throws: UniError.self) { try EnvironmentVariables.parse("1A=b") }
        #expect(badName.message.contains("'1A=b'"))
        #expect(badName.message.contains("[A-Za-z_][A-Za-z0-9_]*"))
    }

    @Test("env files skip comments and blanks and name the bad line")
    func environmentFile() throws {
        let parsed = try EnvironmentVariables.parseFile(contents: "# comment\n\nA=1\r\nB=two words\n", path: "app.env")
        #expect(parsed == ["A": "1", "B": "two words"])
        let error = try #require(throws: UniError.self) { try EnvironmentVariables.parseFile(contents: "A=1\nnot a var\n", path: "app.env") }
        #expect(error.message.hasPrefix("app.env:2: invalid environment variable 'not a var'"))
    }

    @Test("durations: s, ms, m, h and bare seconds")
    func durations() throws {
        #expect(try DurationParser.parse("10s", flag: "--timeout") == .seconds(10))
        #expect(try DurationParser.parse("500ms", flag: "--timeout") == .milliseconds(500))
        #expect(try DurationParser.parse("2m", flag: "--timeout") == .seconds(120))
        #expect(try DurationParser.parse("3", flag: "--timeout") == .seconds(3))
        let error = try #require(throws: UniError.self) { try DurationParser.parse("soon", flag: "--timeout") }
        #expect(error.message == "invalid --timeout 'soon': expected a duration such as 10s, 500ms or 2m (at most 24h)")
    }

    @Test("VM ids are 12 hex digits")
    func vmIDs() throws {
        let id = VMID.random()
        #expect(id.rawValue.count == 12)
        #expect(try VMID(id.rawValue) == id)
        #expect(throws: UniError.self) { try VMID("XYZ") }
    }
}

@Suite("Checking a VM config")
struct VMConfigTests {
    @Test("defaults: 256M, 1 CPU, unless an image says otherwise (nil until the VM is created)")
    func defaults() {
        let config = VMConfig(image: "/k")
        #expect(config.memory == nil && config.cpus == nil)
        #expect(config.effectiveMemory == .mebibytes(256))
        #expect(config.effectiveCPUs == 1)
    }

    @Test("memory must be whole MiB and at least 16M")
    func memory() throws {
        let small = try #require(throws: UniError.self) { try VMConfig(image: "/k", memory: .mebibytes(8)).validated() }
        #expect(small.message.hasPrefix("invalid memory '8M'"))
        let odd = try #require(throws: UniError.self) { try VMConfig(image: "/k", memory: ByteSize(bytes: (64 << 20) + 512)).validated() }
        #expect(odd.message.contains("whole number of MiB"))
    }

    @Test("cpus must be 1 to 64")
    func cpus() throws {
        let error = try #require(throws: UniError.self) { try VMConfig(image: "/k", cpus: 65).validated() }
        #expect(error.message == "invalid cpus '65': must be a whole number from 1 to 64")
    }

    @Test("names: letters, digits, _ . -; not an id", arguments: ["-web", "", "has space", "a/b", "0123456789ab", String(repeating: "a", count: 64)])
    func badNames(name: String) throws {
        let error = try #require(throws: UniError.self) { try VMConfig.validate(name: name) }
        #expect(error.message.hasPrefix("invalid name '\(name)'"))
    }

    @Test("one host port cannot be mapped twice")
    func duplicatePorts() throws {
        let config = VMConfig(image: "/k", ports: [PortMapping(hostPort: 80, guestPort: 80), PortMapping(hostPort: 80, guestPort: 81)])
        let error = try #require(throws: UniError.self) { try config.validated() }
        #expect(error.message.contains("host port 80/tcp is mapped twice"))
    }

    @Test("the lifecycle table allows exactly the documented transitions")
    func transitions() {
        let allowed: Set<String> = ["created>starting", "stopped>starting", "starting>running", "starting>stopped",
                                    "running>stopping", "running>stopped", "stopping>stopped"]
        for from in VMState.allCases {
            for to in VMState.allCases {
                #expect(from.canTransition(to: to) == allowed.contains("\(from)>\(to)"), "\(from) -> \(to)")
            }
        }
    }
}

@Suite("Checking the values that reach QEMU's command line")
struct QEMUValueTests {
    static let injection = "127.0.0.1:18093-:22,guestfwd=tcp:10.0.2.100:1234-cmd:/bin/true,hostfwd=tcp:127.0.0.1"

    @Test("a host address must be a dotted IPv4 address, else it would be spliced into hostfwd=")
    func hostAddressInjection() throws {
        let config = VMConfig(image: "/k", ports: [PortMapping(hostAddress: Self.injection, hostPort: 8080, guestPort: 80)])
        let error = try #require(throws: UniError.self) { try config.validated() }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "invalid port mapping: host address '\(Self.injection)' is not an IPv4 address: expected four numbers 0-255 such as 127.0.0.1")
    }

    @Test("IPv4 addresses: four numbers 0-255 of ASCII digits, no sign, no leading zero",
          arguments: [("127.0.0.1", true), ("0.0.0.0", true), ("255.255.255.255", true), ("10.0.2.15", true),
                      ("256.0.0.1", false), ("1.2.3", false), ("1.2.3.4.5", false), ("+1.2.3.4", false), ("01.2.3.4", false),
                      ("1.2.3.4 ", false), ("1..3.4", false), ("", false), ("\u{FF11}.2.3.4", false), ("1.2.3.4\n", false)])
    func ipv4(text: String, valid: Bool) {
        #expect(PortMapping.isIPv4(text) == valid)
    }

    @Test("ports 0 are refused on either side")
    func zeroPorts() throws {
        let host = try #require(throws: UniError.self) { try VMConfig(image: "/k", ports: [PortMapping(hostPort: 0, guestPort: 80)]).validated() }
        #expect(host.message == "invalid port mapping '0:80/tcp': host port 0 is out of range (1-65535)")
        let guest = try #require(throws: UniError.self) { try VMConfig(image: "/k", ports: [PortMapping(hostPort: 80, guestPort: 0)]).validated() }
        #expect(guest.message == "invalid port mapping '80:0/tcp': guest port 0 is out of range (1-65535)")
    }

    @Test("a kernel command line is at most 2047 bytes, one line, without NUL")
    func kernelCommandLine() throws {
        let long = try #require(throws: UniError.self) {
            try VMConfig(image: "/k", kernelCommandLine: String(repeating: "a", count: 102_400)).validated()
        }
        #expect(long.message == "invalid kernel command line: 102400 bytes, at most 2047 allowed (x86 Linux's COMMAND_LINE_SIZE is 2048 with the final NUL)")
        #expect(try VMConfig(image: "/k", kernelCommandLine: String(repeating: "a", count: 2047)).validated().kernelCommandLine?.count == 2047)
        #expect(throws: UniError.self) { try VMConfig(image: "/k", kernelCommandLine: String(repeating: "a", count: 2048)).validated() }
        for bad in ["a\nb", "a\r\nb", "a\u{0}b", "a\rb"] {
            let error = try #require(throws: UniError.self) { try VMConfig(image: "/k", kernelCommandLine: bad).validated() }
            #expect(error.message.hasPrefix("invalid kernel command line '"))
            #expect(!error.message.contains("\n") && !error.message.contains("\r") && !error.message.contains("\u{0}"))
            #expect(error.message.hasSuffix("it must be one line without control characters (newline, NUL, ...)"))
        }
    }

    @Test("an image path is absolute, without control characters; . and .. are dropped")
    func imagePath() throws {
        let relative = try #require(throws: UniError.self) { try VMConfig(image: "./k.elf").validated() }
        #expect(relative.message == "invalid image './k.elf': give an absolute path")
        // Without ./ it reads as an image reference of the store.
        #expect(try VMConfig(image: "k.elf").validated().image == "k.elf:latest")
        let newline = try #require(throws: UniError.self) { try VMConfig(image: "/img/k.elf\n-append x").validated() }
        #expect(newline.message == #"invalid image '/img/k.elf\n-append x': it must not contain control characters (newline, NUL, ...)"#)
        #expect(throws: UniError.self) { try VMConfig(image: "/img/k\u{0}.elf").validated() }
        #expect(try VMConfig(image: "/img/./a/../k.elf").validated().image == "/img/k.elf")
    }

    @Test("an environment value cannot break its KEY=VALUE line, even with \\r\\n", arguments: ["a\nb", "a\r\nb", "a\rb", "a\u{0}b"])
    func environmentLineBreaks(value: String) throws {
        let error = try #require(throws: UniError.self) { try VMConfig(image: "/k", environment: ["A": value]).validated() }
        #expect(error.message == #"invalid environment variable 'A': the value must not contain a line break (\n, \r) or NUL"#)
    }
}

@Suite("Decoding API bodies")
struct BodyDecodingTests {
    func failure(_ json: String) throws -> String {
        let error = try #require(throws: (any Error).self) { try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(json.utf8)) }
        return JSONCoding.describe(error)
    }

    @Test("type and range errors name the field and what it takes", arguments: [
        (#"{"image":"/x","cpus":"two"}"#, "field 'cpus' must be a whole number"),
        (#"{"image":"/x","cpus":1.5}"#, "field 'cpus': 1.5 is not a whole number"),
        (#"{"image":"/x","cpus":1e100}"#, "field 'cpus': 1e+100 is out of range (1-64)"),
        (#"{"image":"/x","memory_bytes":-1}"#, "field 'memory_bytes': -1 is out of range (bytes, a whole number of MiB and at least 16777216)"),
        (#"{"image":"/x","ports":[{"host_port":70000,"guest_port":80}]}"#, "field 'ports[0].host_port': 70000 is out of range (1-65535)"),
        (#"{"image":"/x","ports":[{"host_port":80,"guest_port":80},{"host_port":81,"guest_port":-5}]}"#, "field 'ports[1].guest_port': -5 is out of range (1-65535)"),
        (#"{"image":"/x","ports":[{"host_port":80}]}"#, "missing field 'ports[0].guest_port'"),
        (#"{"image":"/x","ports":[{"host_port":80,"guest_port":80,"protocol":"sctp"}]}"#, "field 'ports[0].protocol': 'sctp' is not tcp or udp"),
        (#"{"image":"/x","ports":{"host_port":80}}"#, "field 'ports' must be a list"),
        (#"{"image":"/x","env":{"A":1}}"#, "field 'env.A' must be a string"),
        (#"{"image":"/x","auto_remove":"yes"}"#, "field 'auto_remove' must be true or false"),
        (#"{"image":7}"#, "field 'image' must be a string"),
        (#"{}"#, "missing field 'image'"),
    ])
    func typeAndRange(json: String, message: String) throws {
        #expect(try failure(json) == message)
    }

    @Test("restart and health_check fields: a bad value is named with what is allowed", arguments: [
        (#"{"image":"/x","restart":"sometimes"}"#, "invalid restart policy 'sometimes': use never, on-failure[:N] or always[:N] with N from 1 to 1000"),
        (#"{"image":"/x","restart":3}"#, "field 'restart' must be a string"),
        (#"{"image":"/x","health_check":{"type":"tcp","port":80,"path":"/x"}}"#, "invalid health_check: a path applies to http checks only"),
        (#"{"image":"/x","health_check":{"type":"udp","port":80}}"#, "field 'health_check.type': 'udp' is not tcp or http"),
        (#"{"image":"/x","health_check":{"type":"http","port":80,"interval_ms":1.5}}"#, "field 'health_check.interval_ms': 1.5 is not a whole number"),
    ])
    func supervisionFields(json: String, message: String) throws {
        #expect(try failure(json) == message)
    }

    @Test("broken JSON says so")
    func syntax() throws {
        #expect(try failure("{oops") == "not valid JSON")
    }

    @Test("a port mapping's protocol defaults to TCP")
    func defaultProtocol() throws {
        let config = try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(#"{"image":"/x","ports":[{"host_port":8080,"guest_port":80}]}"#.utf8))
        #expect(config.ports == [PortMapping(hostPort: 8080, guestPort: 80)])
    }
}

@Suite("Socket paths of a data dir")
struct SocketPathTests {
    @Test("one limit for every socket: SwiftNIO's 103 bytes")
    func limit() throws {
        try DataDirectory.checkSocketPath("/" + String(repeating: "s", count: 102))
        let path = "/" + String(repeating: "s", count: 103)
        let error = try #require(throws: UniError.self) { try DataDirectory.checkSocketPath(path) }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "socket path '\(path)' is 104 bytes, more than the 103 a Unix socket path may have: use a shorter --data-dir")
    }

    @Test("a data dir too deep for its VMs' QMP sockets is refused though its API socket fits")
    func deepDataDirectory() throws {
        // 77 bytes: <root>/vms/<12-hex-id>/qmp.sock is 103; one more is too many.
        let fits = DataDirectory(root: "/" + String(repeating: "d", count: 76))
        try fits.validateSocketPaths()
        let deep = DataDirectory(root: "/" + String(repeating: "d", count: 77))
        #expect(deep.socketPath.utf8.count < DataDirectory.maximumSocketPathBytes)
        let error = try #require(throws: UniError.self) { try deep.validateSocketPaths() }
        #expect(error.message == "data dir '\(deep.root)' is too deep: each VM's QMP socket '\(deep.root)/vms/<id>/qmp.sock' would be 104 bytes, more than the 103 a Unix socket path may have: use a shorter --data-dir")
    }
}
