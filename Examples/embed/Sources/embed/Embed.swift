import Foundation
import UniKit

/// `embed KERNEL [CMDLINE] [SECONDS]`: runs KERNEL (an ELF with a PVH note or
/// a multiboot header, or a bzImage) with UniKit and no daemon, prints its
/// console, stops it after SECONDS (default 5) if it still runs, then prints
/// its exit code and exits with it. `UNI_ACCEL=tcg|kvm` overrides the
/// accelerator (default `auto`: KVM when `/dev/kvm` opens).
@main
enum Embed {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: embed KERNEL [CMDLINE] [SECONDS]\n".utf8))
            exit(2)
        }
        let config = VMConfig(image: DataDirectory.absolute(arguments[1]), kernelCommandLine: arguments.count > 2 ? arguments[2] : nil)
        let seconds = arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5
        let dataDirectory = DataDirectory(root: NSTemporaryDirectory() + "uni-embed-\(getpid())")
        let accelerator = ProcessInfo.processInfo.environment["UNI_ACCEL"].flatMap(AcceleratorChoice.init(rawValue:)) ?? .auto

        let host = try await VMHost.make(dataDirectory: dataDirectory, options: VMHostOptions(accelerator: accelerator, stopTimeout: .seconds(2)))
        try await host.manager.load()
        let vm = try await host.manager.withRunning { manager in
            let (vm, console) = try await manager.runAttached(config)
            let id = vm.id.rawValue
            let deadline = Task {
                try await Task.sleep(for: .seconds(seconds))
                _ = try await manager.stop(id)
            }
            for await chunk in console { FileHandle.standardOutput.write(Data(chunk)) }  // ends when the VM stops
            deadline.cancel()
            return try await manager.wait(id)
        }
        print("exit code: \(vm.exitCode.map { "\($0)" } ?? "-") (\(vm.stopReason?.rawValue ?? "-"))")
        try? FileManager.default.removeItem(atPath: dataDirectory.root)
        exit(vm.exitCode ?? 1)
    }
}
