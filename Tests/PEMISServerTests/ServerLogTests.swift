import Foundation
import GRDB
import GRPCCore
import Logging
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISServer
import SwiftProtobuf
import Synchronization
import Testing

@testable import PEMISStore

/// The server's log lines and request ids (docs/OPERATIONS.md, "Logs").
@Suite("Logs and request ids")
struct ServerLogTests {
  /// Lines a handler wrote.
  final class Lines: Sendable {
    let all = Mutex<[String]>([])
    var lines: [String] { all.withLock { $0 } }
  }

  func logger(_ format: ServerLogHandler.Format, maxRepeats: Int = 20) -> (Logger, Lines) {
    let lines = Lines()
    let output = LogOutput(maxRepeats: maxRepeats, window: .seconds(60)) { line in lines.all.withLock { $0.append(line) } }
    var handler = ServerLogHandler(label: "pemis", level: .info, format: format, output: output)
    handler.metadataProvider = RequestID.metadataProvider
    return (Logger(label: "pemis", factory: { _ in handler }), lines)
  }

  @Test("JSON lines: one object each, with time, level, label, message, the metadata and the call's request id")
  func json() throws {
    let (logger, lines) = logger(.json)
    RequestID.$current.withValue("0123456789abcdef") {
      logger.warning("periodic recovery failed", metadata: ["error": "the disk is full", "line\nbreak": "a \"quoted\" value"])
    }
    logger.info("pemis-server stopped")
    #expect(lines.lines.count == 2)
    let first = try #require(try JSONSerialization.jsonObject(with: Data(lines.lines[0].utf8)) as? [String: Any])
    #expect(first["level"] as? String == "warning")
    #expect(first["label"] as? String == "pemis")
    #expect(first["message"] as? String == "periodic recovery failed")
    #expect(first["error"] as? String == "the disk is full")
    #expect(first["line\nbreak"] as? String == "a \"quoted\" value")
    #expect(first["rpc.request_id"] as? String == "0123456789abcdef")
    #expect((first["time"] as? String)?.count ?? 0 >= 20)
    #expect(!lines.lines[0].contains("\n"), "a JSON line must stay one line")
    let second = try #require(try JSONSerialization.jsonObject(with: Data(lines.lines[1].utf8)) as? [String: Any])
    #expect(second["rpc.request_id"] == nil)
  }

  @Test("a line repeated more than the limit in a window is held back, and the count is told with the next one let through")
  func repeats() {
    let (logger, lines) = logger(.text, maxRepeats: 3)
    for n in 0..<10 { logger.warning("refusing connection: server connection limit reached", metadata: ["n": "\(n)"]) }
    logger.warning("another line")
    #expect(lines.lines.count == 4)
    #expect(lines.lines.filter { $0.contains("refusing connection") }.count == 3)
    #expect(lines.lines.last?.contains("another line") == true)
  }

  @Test("the text format reads as before: time, level, label, message, sorted metadata")
  func text() {
    let (logger, lines) = logger(.text)
    logger.error("audit log append failed", metadata: ["b": "2", "a": "1"])
    #expect(lines.lines.count == 1)
    #expect(lines.lines[0].hasSuffix(" error pemis: audit log append failed a=1 b=2"), "\(lines.lines[0])")
  }

  @Test("a refused call carries its request id to the client, and its audit entry has the same one")
  func requestID() async throws {
    try await withDistrict { district in
      let error = try #require(
        await #expect(throws: RPCError.self) {
          try await district.asUser(District.user(.principal)) { client in
            _ = try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with { $0.kindergartenCode = District.kindergartenB })
          }
        })
      #expect(error.code == .permissionDenied)
      let id = try #require(error.metadata[stringValues: RequestID.metadataKey].first(where: { _ in true }))
      #expect(id.count == 16 && id.allSatisfy(\.isHexDigit))
      #expect(describeFailure(error).hasSuffix("(请求编号 request id \(id))"))
      let entries = try await district.registry.writer.read { db in
        try AuditRecord.filter(Column("requestId") == id).fetchAll(db)
      }
      #expect(entries.map(\.method) == ["/pemis.v1.Audit/QueryAuditLog"])
      #expect(entries.first?.result == "PERMISSION_DENIED")
      // Each call has its own (a change's STARTED entry shares its outcome's); the chain, with
      // ids hashed, still verifies.
      let ids = try await district.registry.writer.read { db in
        try String.fetchAll(db, sql: "SELECT requestId FROM audit_log WHERE requestId <> '' AND result <> 'STARTED'")
      }
      #expect(Set(ids).count == ids.count)
      guard case .intact = try await district.registry.verifyAuditChain() else {
        Issue.record("the audit chain does not verify with request ids")
        return
      }
    }
  }
}
