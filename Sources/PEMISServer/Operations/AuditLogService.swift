public import Foundation
public import Logging
public import PEMISStore
public import ServiceLifecycle

/// The audit log's service (docs/TENANCY.md, "Audit log"): the one writer of audit entries while
/// the server runs (group commit, ``Registry/runAuditAppender(until:)``), and the keeper of the
/// chain's head file, written every `interval` and once more when it stops. In the service group
/// it comes before the server, so it stops after it: the entries of the calls the server
/// finishes while draining are written, then the head.
public struct AuditLogService: Service {
  let registry: Registry
  let headFile: String?
  let interval: Duration
  let logger: Logger

  public init(registry: Registry, headFile: String?, interval: Duration, logger: Logger) {
    self.registry = registry
    self.headFile = headFile
    self.interval = interval
    self.logger = logger
  }

  public func run() async throws {
    let (stop, stopping) = AsyncStream<Void>.makeStream()
    await withGracefulShutdownHandler {
      await withTaskGroup(of: Void.self) { group in
        group.addTask { [registry] in await registry.runAuditAppender(until: stop) }
        if let headFile {
          group.addTask { [self] in
            while !Task.isCancelled {
              try? await Task.sleep(for: interval)
              if Task.isCancelled { break }
              await writeHead(to: headFile)
            }
          }
        }
        // The appender ends with `stop`; then the head writer is not needed any more.
        _ = await group.next()
        group.cancelAll()
      }
      if let headFile { await writeHead(to: headFile) }
    } onGracefulShutdown: {
      stopping.finish()
    }
  }

  /// Writes the head now (atomically: a reader sees the old one or the new one).
  func writeHead(to path: String) async {
    do {
      let head = try await registry.auditHead()
      try AuditHeadFile(head: head, at: Date()).write(to: path)
    } catch {
      logger.error("audit head file could not be written", metadata: ["audit.head_file": "\(path)", "error": "\(error)"])
    }
  }
}

/// What the head file holds: the last entry's sequence number and hash, and when it was written.
public struct AuditHeadFile: Codable, Sendable, Equatable {
  public var sequence: Int64
  public var hash: String
  public var writtenAt: String

  public init(head: Registry.AuditHead, at date: Date) {
    sequence = head.sequence
    hash = head.hash
    writtenAt = ISO8601DateFormatter().string(from: date)
  }

  public static func read(from path: String) throws -> AuditHeadFile {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
      throw ConfigurationError(key: "--head", message: "\(path) cannot be read: \(error.localizedDescription)")
    }
    do { return try JSONDecoder().decode(AuditHeadFile.self, from: data) } catch {
      throw ConfigurationError(key: "--head", message: "\(path) is not an audit head file (sequence, hash, writtenAt)")
    }
  }

  /// What the log says of this head.
  public enum Check: Sendable, Equatable {
    /// The log still has the entry, with the same hash.
    case contained
    /// The log ends before the entry: `missing` entries were cut off the end.
    case cut(missing: Int64, logEndsAt: Int64)
    /// The log has the entry, with another hash.
    case differs
    /// The entry was pruned (`audit prune`) since the head was written: nothing to compare
    /// (unless it was the last one removed, whose hash the log keeps).
    case pruned(through: Int64)
  }

  /// Checks this head against the log (its chain verified separately).
  public func check(_ registry: Registry) async throws -> Check {
    if let pruned = try await registry.auditPrunedThrough(), sequence <= pruned.sequence {
      if sequence == pruned.sequence { return hash == pruned.hash ? .contained : .differs }
      return .pruned(through: pruned.sequence)
    }
    let last = try await registry.auditHead()
    guard sequence <= last.sequence else { return .cut(missing: sequence - last.sequence, logEndsAt: last.sequence) }
    if sequence == last.sequence { return hash == last.hash ? .contained : .differs }
    return try await registry.auditHash(at: sequence) == hash ? .contained : .differs
  }

  func write(to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try encoder.encode(self).write(to: url, options: .atomic)
  }
}
