import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UniCore

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
