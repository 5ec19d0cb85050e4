import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// `uni image import|ls`: the local image store.
struct ImageGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Manage stored images.",
        subcommands: [ImageImport.self, ImageList.self, ImageRemove.self]
    )
}

struct ImageImport: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Store a kernel (with an optional initrd) or a disk image as NAME:TAG; prints its digest.",
        discussion: "The files are read by unid, so give paths on unid's host. --cmdline, --memory, --cpus, -e and --expose are the defaults of VMs run from the image; uni run flags win over them."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "NAME:TAG to store it under.") var reference: String
    @Option(help: "Kernel image (ELF/PVH or bzImage).") var kernel: String?
    @Option(help: "Initrd for the kernel.") var initrd: String?
    @Option(help: "Raw bootable disk image (instead of --kernel).") var disk: String?
    @Option(parsing: .unconditional, help: "Default kernel command line.") var cmdline: String?
    @Option(parsing: .unconditional, help: "Default guest memory, e.g. 64M.") var memory: String?
    @Option(parsing: .unconditional, help: "Default vCPUs.") var cpus: String?
    @Option(name: [.customShort("e"), .customLong("env")], help: "Default guest environment KEY=VALUE (repeatable).") var env: [String] = []
    @Option(help: "A port the image serves, PORT[/tcp|udp] (repeatable; documentation for -p).") var expose: [String] = []

    func run() throws {
        let absolute = { (path: String?) in path.map { DataDirectory.absolute($0) } }
        var config = UniImageConfig(kernelCommandLine: cmdline, exposedPorts: expose,
                                    environment: try RunOptions.environment(flags: env, files: []))
        config.memory = try memory.map { try ByteSize(parsing: $0, name: "memory") }
        config.cpus = try cpus.map(Run.parseCPUs)
        let request = ImageImportRequest(reference: reference, kernel: absolute(kernel), initrd: absolute(initrd), disk: absolute(disk), config: config)
        try request.validate()
        print(try global.client.importImage(request).digest)
    }
}

struct ImageList: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List stored images (as uni images).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Print references only.") var quiet = false
    @Option(name: [.customShort("o"), .long, .customLong("format")], help: "table or json.") var output: OutputFormat = .table
    func run() throws { try Images.list(global: global, quiet: quiet, output: output) }
}

struct ImageRemove: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove image tags (as uni rmi).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Remove even when VMs use it (its files stay until they are removed).") var force = false
    @Argument(help: "Image references.") var images: [String]
    func run() throws { try RemoveImage.remove(images, force: force, global: global) }
}

struct Images: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List stored images: REPOSITORY TAG DIGEST CREATED SIZE.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Print references only.") var quiet = false
    @Option(name: [.customShort("o"), .long, .customLong("format")], help: "table or json.") var output: OutputFormat = .table
    func run() throws { try Images.list(global: global, quiet: quiet, output: output) }

    static func list(global: GlobalOptions, quiet: Bool, output: OutputFormat) throws {
        let images = try global.client.images()
        if quiet {
            print(images.map(\.reference.description).joined(separator: "\n"), terminator: images.isEmpty ? "" : "\n")
        } else {
            print(output == .json ? try CLIRendering.json(images) : CLIRendering.imagesTable(images), terminator: "")
        }
    }
}

struct Tag: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Give a stored image another name and tag.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The stored image.") var source: String
    @Argument(help: "The new NAME:TAG (REGISTRY/REPO:TAG to push it there).") var target: String
    func run() throws {
        _ = try ImageReference.parse(source)
        _ = try ImageReference.parse(target)
        _ = try global.client.tagImage(source, as: target)
    }
}

struct RemoveImage: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove image tags; refused while a VM uses the image, unless -f.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Remove even when VMs use it (its files stay until they are removed).") var force = false
    @Argument(help: "Image references.") var images: [String]
    func run() throws { try RemoveImage.remove(images, force: force, global: global) }

    static func remove(_ images: [String], force: Bool, global: GlobalOptions) throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        try forEach(images) { reference in
            _ = try ImageReference.parse(reference)
            let removed = try global.client.removeImage(reference, force: force)
            print("Untagged: \(removed.reference)")
        }
    }
}

struct Pull: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "pull", abstract: "Pull an image from an OCI registry into unid's store.",
        discussion: "Every blob is checked against its digest and size. Plain HTTP is used for loopback registries, and for others with --insecure. Credentials come from uni login."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Allow plain HTTP (loopback registries always may).") var insecure = false
    @Argument(help: "REGISTRY/REPO[:TAG].") var reference: String
    func run() throws {
        _ = try ImageReference.parsePullable(reference)
        let image = try TransferPrinter.showing { try global.client.pull(ImagePullRequest(reference: reference, insecure: insecure), onEvent: $0) }
        print("Pulled \(image.reference) \(image.digest)")
    }
}

struct Push: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Push a stored image to an OCI registry.",
        discussion: "Without DESTINATION the image's own name says where (it must name a registry). Blobs the registry has are skipped; blobs in another repository of the same registry are mounted."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Allow plain HTTP (loopback registries always may).") var insecure = false
    @Argument(help: "The stored image.") var source: String
    @Argument(help: "REGISTRY/REPO[:TAG] to push to.") var destination: String?
    func run() throws {
        _ = try ImageReference.parse(source)
        if let destination { _ = try ImageReference.parse(destination) }
        let pushed = try TransferPrinter.showing { try global.client.push(ImagePushRequest(source: source, destination: destination, insecure: insecure), onEvent: $0) }
        print("Pushed \(pushed.reference) \(pushed.digest)")
    }
}

struct Login: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Log in to a registry: unid checks the credentials and keeps them (mode 0600) for push and pull."
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long], help: "User name.") var username: String
    @Option(name: [.short, .long], help: "Password (prefer --password-stdin: a flag shows in the process list).") var password: String?
    @Flag(help: "Read the password from standard input.") var passwordStdin = false
    @Flag(help: "Allow plain HTTP (loopback registries always may).") var insecure = false
    @Argument(help: "The registry, HOST[:PORT].") var registry: String
    func run() throws {
        guard (password == nil) != !passwordStdin else {
            throw UniError.invalid("give the password with --password or --password-stdin (one of them)")
        }
        var secret = password ?? ""
        if passwordStdin {
            secret = String(readLine(strippingNewline: true) ?? "")
            guard !secret.isEmpty else { throw UniError.invalid("--password-stdin read no password") }
        }
        try global.client.login(RegistryLoginRequest(registry: registry, username: username, password: secret, insecure: insecure))
        print("Login Succeeded")
    }
}

struct Logout: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Forget the saved login of a registry.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The registry, HOST[:PORT].") var registry: String
    func run() throws {
        try global.client.logout(registry: registry)
        print("Removed login credentials for \(registry)")
    }
}

/// Push and pull progress: one line per blob, redrawn in place on a
/// terminal (`sha256:0123456789ab  kernel  downloading  1.2 MiB / 3.0 MiB`),
/// plain lines for each step otherwise.
final class TransferPrinter {
    private let terminal: Bool
    private var order: [String] = []
    private var lines: [String: String] = [:]
    private var drawn = 0

    init(terminal: Bool) { self.terminal = terminal }

    /// Runs a transfer, showing its steps on standard output as they come.
    static func showing<T>(_ transfer: (_ onEvent: (ImageTransferEvent) -> Void) throws -> T) throws -> T {
        let printer = TransferPrinter(terminal: isatty(STDOUT_FILENO) == 1)
        return try transfer { printer.show($0) }
    }

    func show(_ event: ImageTransferEvent) {
        guard let digest = event.digest else { return }
        let short = String(digest.dropFirst("sha256:".count).prefix(12))
        let text: String?
        switch event.type {
        case "started":
            if !order.contains(digest) { order.append(digest) }
            let kind = event.mediaType.map { $0.split(separator: ".").dropLast().last.map(String.init) ?? $0 } ?? "blob"
            text = "\(short)  \(kind)  waiting  \(event.total.map(CLIRendering.bytes) ?? "")"
        case "advanced":
            let done = event.bytes.map(CLIRendering.bytes) ?? "?"
            let total = event.total.map(CLIRendering.bytes) ?? "?"
            text = terminal ? "\(short)  \(Self.bar(event.bytes ?? 0, of: event.total ?? 0))  \(done) / \(total)" : nil
        case "skipped": text = "\(short)  \(event.reason ?? "skipped")"
        case "finished": text = "\(short)  done"
        case "manifest": text = "manifest \(short)  done"
        default: text = nil
        }
        guard let text else { return }
        if !order.contains(digest) { order.append(digest) }
        lines[digest] = text
        if terminal { redraw() } else { StandardStreams.writeOutput(Array((text + "\n").utf8)) }
    }


    /// `[=========>          ]`, 20 wide.
    static func bar(_ done: UInt64, of total: UInt64) -> String {
        let width = 20
        let filled = total == 0 ? width : Int(min(Double(done) / Double(total), 1) * Double(width))
        return "[" + String(repeating: "=", count: max(filled - 1, 0)) + (filled > 0 ? ">" : "") + String(repeating: " ", count: width - filled) + "]"
    }

    private func redraw() {
        var out = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
        for digest in order { out += "\u{1B}[2K" + (lines[digest] ?? "") + "\n" }
        drawn = order.count
        StandardStreams.writeOutput(Array(out.utf8))
    }
}
