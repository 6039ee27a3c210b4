import ArgumentParser
import Foundation
import PEMISServer
import PEMISStore

#if canImport(Glibc)
  import Glibc
#endif

/// What a running `pemis-server serve` leaves in its data directory for `status`: who it is and
/// where it listens. Written once it listens, removed when it stops; a stale one (the process is
/// gone) means the server died without stopping.
struct RuntimeFile: Codable {
  static let name = "pemis-server.status.json"
  var pid: Int32
  var version: String
  /// Seconds since 1970.
  var startedAt: Int64
  /// "127.0.0.1:7400 (PEMIS wire v1)", …
  var listeners: [String]

  static func path(in dataDirectory: String) -> String { (dataDirectory as NSString).appendingPathComponent(name) }

  func write(to dataDirectory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(in: dataDirectory)), options: .atomic)
  }

  static func read(from dataDirectory: String) -> RuntimeFile? {
    guard let data = FileManager.default.contents(atPath: path(in: dataDirectory)) else { return nil }
    return try? JSONDecoder().decode(RuntimeFile.self, from: data)
  }

  static func remove(from dataDirectory: String) { try? FileManager.default.removeItem(atPath: path(in: dataDirectory)) }

  /// Whether the process is alive (EPERM: alive, another user's).
  var isRunning: Bool { kill(pid, 0) == 0 || errno == EPERM }
}

/// `pemis-server status`: what an operator checks first.
struct Status: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show whether the server runs, where it listens, the data's size, the oldest transfer mid-step and the audit chain's head.",
    discussion: """
      Reads the data directory without writing to it, so it is safe beside a running server and \
      as another user who can read the directory. Exits 0 when the server runs, 3 when it does \
      not (as systemd's status does).
      """)

  @OptionGroup var options: ServerOptions

  func run() async throws {
    let configuration: ServerConfiguration
    do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
    let data = configuration.dataDirectory
    try Self.becomeOwner(of: data)
    let now = Int64(Date().timeIntervalSince1970)
    print("pemis-server \(ServerStatus.version) 状态 status")
    let runtime = RuntimeFile.read(from: data)
    let running = runtime?.isRunning ?? false
    if let runtime, running {
      print("  运行 running:     pid \(runtime.pid), version \(runtime.version), since \(Self.time(runtime.startedAt)) (up \(Self.duration(now - runtime.startedAt)))")
      print("  监听 listeners:   \(runtime.listeners.joined(separator: "; "))")
    } else if let runtime {
      print("  运行 running:     no — pid \(runtime.pid) (started \(Self.time(runtime.startedAt))) is gone without stopping cleanly; read its log")
    } else {
      print("  运行 running:     no (no \(RuntimeFile.name) in the data directory)")
    }
    let status: DataDirectoryStatus
    do {
      status = try Registry.status(ofDataDirectory: data)
    } catch {
      print("  数据 data:        \(data): \(error)")
      throw ExitCode(running ? 1 : 3)
    }
    print("  数据 data:        \(data): \(Self.size(status.bytes)) in \(status.files) files, \(status.kindergartens) kindergartens")
    if let oldest = status.oldestInFlightTransfer {
      print("  转学 transfers:   oldest mid-step \(oldest.id), for \(Self.duration(now - oldest.since)) (steps take milliseconds: see `pemis-server check`); \(status.awaitingReceiver) awaiting their receiver")
    } else {
      print("  转学 transfers:   none mid-step; \(status.awaitingReceiver) awaiting their receiver")
    }
    print("  备份 backup:      none recorded (PEMIS does not make backups yet: copy the stopped data directory; docs/OPERATIONS.md)")
    print("  审计链 audit:     \(status.auditEntries) entries, head \(status.auditHead) (`pemis-server audit verify` checks the whole chain)")
    if !running { throw ExitCode(3) }
  }

  /// Run as root (sudo) on a data directory another user owns (the service's `pemis`), reads as
  /// that user: least privilege for a command that only reads, and whatever SQLite creates beside
  /// a stopped server's database (its `-wal` and `-shm`) belongs to the service's user.
  static func becomeOwner(of directory: String) throws {
    guard getuid() == 0, let attributes = try? FileManager.default.attributesOfItem(atPath: directory),
      let uid = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value, uid != 0,
      let gid = (attributes[.groupOwnerAccountID] as? NSNumber)?.uint32Value
    else { return }
    guard setgroups(0, nil) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
      throw ValidationError("cannot read \(directory) as its owner (uid \(uid)): \(String(cString: strerror(errno)))")
    }
  }

  static func time(_ seconds: Int64) -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss ZZZZZ"
    formatter.timeZone = .current
    return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
  }

  static func duration(_ seconds: Int64) -> String {
    let s = max(0, seconds)
    if s < 60 { return "\(s) s" }
    if s < 3600 { return "\(s / 60) min \(s % 60) s" }
    if s < 86400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
    return "\(s / 86400) d \(s % 86400 / 3600) h"
  }

  static func size(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
  }
}
