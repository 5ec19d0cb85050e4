import Foundation
import Testing
import UniKit

/// The values of `--cpu-shares`, `--memory-max`, `--disk-iops`, `--disk-bps`
/// and their API fields: each bad one is named with what is allowed.
@Suite("Resource limits: parsing and checking")
struct ResourceLimitTests {
    func message(_ body: () throws -> Any) -> String? {
        do {
            _ = try body()
            return nil
        } catch {
            return (error as? UniError)?.message ?? "\(error)"
        }
    }

    @Test("flag values out of range or malformed are refused, naming the value and the range or form")
    func flagValues() {
        #expect(message { try ResourceQuota.parseCPUShares("0") } == "invalid --cpu-shares '0': use a whole number from 1 to 10000 (default 100)")
        #expect(message { try ResourceQuota.parseCPUShares("10001") } == "invalid --cpu-shares '10001': use a whole number from 1 to 10000 (default 100)")
        #expect(message { try ResourceQuota.parseCPUShares("lots") }?.hasPrefix("invalid --cpu-shares 'lots'") == true)
        #expect((try? ResourceQuota.parseCPUShares("10000")) == 10000)
        #expect(message { try ByteSize(parsing: "1Q", name: "--memory-max") } == "invalid --memory-max '1Q': expected a whole number with an optional unit K, M, G or T (for example 64M)")
        #expect(message { try DiskThrottle.parseIOPS("-1") } == "invalid --disk-iops '-1': use a whole number from 0 (no limit) to 1000000000000000")
        #expect(message { try DiskThrottle.parseIOPS("1000000000000001") }?.hasPrefix("invalid --disk-iops '1000000000000001'") == true)
        #expect(message { try DiskThrottle.parseBytesPerSecond("10X") } == "invalid --disk-bps '10X': expected a whole number with an optional unit K, M, G or T (for example 64M)")
        #expect(message { try DiskThrottle.parseBytesPerSecond("1T") } == nil)
        #expect(message { try DiskThrottle.parseBytesPerSecond("1024T") } == "invalid --disk-bps '1024T': at most 1000000000000000 bytes per second")
        #expect((try? DiskThrottle.parseBytesPerSecond("10M")) == 10 << 20)
    }

    @Test("a memory ceiling below the guest memory is refused at create; disk limits on a kernel image too")
    func configChecks() {
        let low = VMConfig(image: "/x", memory: .mebibytes(256), quota: ResourceQuota(memoryMax: .mebibytes(128)))
        #expect(message { try low.validated() } == "invalid memory max '128M': it must be at least the VM's memory (256M); QEMU needs some more of its own")
        #expect(message { try VMConfig(image: "/x", memory: .mebibytes(256), quota: ResourceQuota(memoryMax: .mebibytes(256))).validated() } == nil)
        #expect(message { try VMConfig(image: "/x", quota: ResourceQuota(cpuShares: 0)).validated() } == "invalid cpu shares '0': use a whole number from 1 to 10000 (default 100)")
        let throttled = VMConfig(image: "/k.elf", diskThrottle: DiskThrottle(iops: 10))
        #expect(message { try throttled.validate(for: .kernel) } == "invalid disk throttle for '/k.elf': it is a kernel image, which has no boot disk; --disk-iops and --disk-bps apply to disk images only")
        #expect(message { try throttled.validate(for: .disk) } == nil)
        #expect(message { try VMConfig(image: "/k.elf").validate(for: .kernel) } == nil)
    }

    @Test("an update replaces only what it names; 0 removes a memory or disk limit; the result is checked as a whole")
    func updates() throws {
        let config = VMConfig(image: "/d.img", memory: .mebibytes(64), quota: ResourceQuota(cpuShares: 200, memoryMax: .mebibytes(512)),
                              diskThrottle: DiskThrottle(iops: 50, bytesPerSecond: 4096))
        let shares = try ResourceUpdate(cpuShares: 300).applied(to: config)
        #expect(shares.quota == ResourceQuota(cpuShares: 300, memoryMax: .mebibytes(512)))
        #expect(shares.diskThrottle == config.diskThrottle)
        let cleared = try ResourceUpdate(memoryMax: ByteSize(bytes: 0), diskIOPS: 0).applied(to: config)
        #expect(cleared.quota == ResourceQuota(cpuShares: 200))
        #expect(cleared.diskThrottle == DiskThrottle(bytesPerSecond: 4096))
        #expect(message { try ResourceUpdate(memoryMax: .mebibytes(32)).applied(to: config) }
                == "invalid memory max '32M': it must be at least the VM's memory (64M); QEMU needs some more of its own")
        #expect(message { try ResourceUpdate().applied(to: config) }?.hasPrefix("nothing to update: give at least one of cpu_shares") == true)
    }

    @Test("API fields: types and ranges are named", arguments: [
        (#"{"cpu_shares":"many"}"#, "field 'cpu_shares' must be a whole number"),
        (#"{"cpu_shares":1.5}"#, "field 'cpu_shares': 1.5 is not a whole number"),
        (#"{"disk_iops":-1}"#, "field 'disk_iops': -1 is out of range (0-1000000000000000)"),
        (#"{"memory_max_bytes":-5}"#, "field 'memory_max_bytes': -5 is out of range (bytes, 0 for no limit)"),
    ])
    func updateBody(json: String, expected: String) throws {
        let error = try #require(throws: (any Error).self) { try JSONCoding.makeDecoder().decode(ResourceUpdate.self, from: Data(json.utf8)) }
        #expect(JSONCoding.describe(error) == expected)
    }

    @Test("the config's limits round-trip through JSON under quota and disk_throttle")
    func configJSON() throws {
        let config = VMConfig(image: "/d.img", quota: ResourceQuota(cpuShares: 500, memoryMax: .mebibytes(300)), diskThrottle: DiskThrottle(iops: 7, bytesPerSecond: 9))
        let data = try JSONCoding.makeEncoder().encode(config)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""quota":{"cpu_shares":500,"memory_max_bytes":314572800}"#), "\(text)")
        #expect(text.contains(#""disk_throttle":{"bps":9,"iops":7}"#), "\(text)")
        #expect(try JSONCoding.makeDecoder().decode(VMConfig.self, from: data) == config)
        let old = try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(#"{"image":"/d.img"}"#.utf8))
        #expect(old.quota.isUnlimited && old.diskThrottle.isUnlimited)
    }
}
