import ArgumentParser
import Foundation
import Logging
import PEMISServer
import PEMISStore

/// `pemis-server key …`: the data keys that seal children's ID numbers, health and guardians'
/// phones at rest (docs/OPERATIONS.md, "Encryption at rest"). On the server host, with the data
/// directory and the key file; works while the server runs.
struct KeyCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "key",
    abstract: "Data keys: status, rotation, re-sealing (needs the data directory and the key file).",
    discussion: """
      The key file (dataKeyFile, default beside the data directory: ./data.key) holds an index \
      key for searchable keys and numbered data keys; the active one seals new values. `rotate` \
      adds a data key, makes it active and re-seals every value under it while the server runs \
      (the server re-reads the file within seconds). Keep every key file version's backup apart \
      from the data backups: a backup made before a rotation needs the older key.
      """,
    subcommands: [Status.self, Rotate.self, Reseal.self])

  static func open(_ options: ServerOptions) throws -> PEMISServer {
    let configuration: ServerConfiguration
    do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
    return try PEMISServer(configuration: configuration, logger: Logger(label: "pemis.key", factory: { _ in SwiftLogNoOpLogHandler() }))
  }

  static func describe(_ counts: [UInt32: Int]) -> String {
    counts.isEmpty ? "no sealed values yet" : counts.sorted { $0.key < $1.key }.map { key, n in key == 0 ? "\(n) NOT sealed" : "\(n) under key \(key)" }.joined(separator: ", ")
  }

  struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Where the keys come from, the active key, and what each key sealed.")
    @OptionGroup var options: ServerOptions

    func run() async throws {
      try await AdminCommand.step {
        let server = try KeyCommand.open(options)
        let keys = server.tenancy.registry.keys
        print("keys: \(keys.source.name)")
        print("index key fingerprint: \(keys.fingerprint)")
        print("data keys: \(keys.keyNumbers.map(String.init).joined(separator: ", ")); active: \(keys.activeKey)")
        let sealed = try await server.tenancy.sealedValueCounts()
        print("sealed values: \(KeyCommand.describe(sealed.counts))")
        try KeyCommand.reportUnreadable(sealed.unreadable)
      }
    }
  }

  struct Rotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Add a data key, make it active, and re-seal every value under it (online; audited).")
    @OptionGroup var options: ServerOptions

    func run() async throws {
      try await AdminCommand.step {
        let server = try KeyCommand.open(options)
        let keys = server.tenancy.registry.keys
        let id = try keys.rotateFile()
        print("data key \(id) added to \(keys.source.name) and active")
        try await KeyCommand.resealUntilDone(server, active: id)
      }
    }
  }

  struct Reseal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Re-seal under the active key what older keys sealed (after a rotation by PEMIS_DATA_KEY, or one cut short).")
    @OptionGroup var options: ServerOptions

    func run() async throws {
      try await AdminCommand.step {
        let server = try KeyCommand.open(options)
        try await KeyCommand.resealUntilDone(server, active: server.tenancy.registry.keys.activeKey)
      }
    }
  }

  /// Names every kindergarten whose shard could not be read, on standard error, and fails the
  /// command: its values are not counted, and not re-sealed.
  static func reportUnreadable(_ unreadable: [Tenancy.UnreadableShard]) throws {
    guard !unreadable.isEmpty else { return }
    for shard in unreadable {
      FileHandle.standardError.write(Data("pemis-server key: 幼儿园 \(shard.code) 的数据无法读取 kindergarten \(shard.code) could not be read: \(shard.message)\n".utf8))
    }
    FileHandle.standardError.write(Data("pemis-server key: \(unreadable.count) kindergartens not counted or re-sealed; restore their shards (docs/OPERATIONS.md), then run `pemis-server key reseal` again\n".utf8))
    throw ExitCode(1)
  }

  /// Re-seals, then counts: a running server seals with the old key until it re-reads the file
  /// (at most a few seconds), so a pass that leaves values under an older key is repeated.
  static func resealUntilDone(_ server: PEMISServer, active: UInt32) async throws {
    for pass in 1...5 {
      let (count, unreadable) = try await server.tenancy.resealAll()
      let (counts, _) = try await server.tenancy.sealedValueCounts()
      print("pass \(pass): re-sealed \(count) values; now \(describe(counts))")
      // A shard that cannot be read will not be read on the next pass either: say which, and stop.
      try reportUnreadable(unreadable)
      if counts.keys.allSatisfy({ $0 == active }) { return }
      try await Task.sleep(for: .seconds(3))
    }
    FileHandle.standardError.write(Data("pemis-server key: values under older keys remain; is another server using an older key file?\n".utf8))
    throw ExitCode(1)
  }
}
