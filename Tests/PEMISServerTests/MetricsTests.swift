import Foundation
import FoundationNetworking
import GRDB
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISServer
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISStore

/// `/metrics` as Prometheus and an operator see it (docs/OPERATIONS.md, "Metrics" and "Alerts").
@Suite("Metrics and alerts")
struct MetricsTests {
  /// A district server with the metrics listener on a free port.
  func withMetrics<R: Sendable>(_ body: (District, URL) async throws -> R) async throws -> R {
    try await withDistrict({ $0.metricsPort = 0 }) { district in
      let address = try #require(try await district.server.metricsListeningHostAndPort)
      return try await body(district, URL(string: "http://\(address)/metrics")!)
    }
  }

  @Test("calls are counted by listener, service, method and the status the client saw, with their latency")
  func calls() async throws {
    try await withMetrics { district, url in
      _ = try await district.asUser(District.user(.principal)) { client in
        try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
      }
      // A denied call: a principal may not read the district audit log of another kindergarten.
      let denied = await #expect(throws: RPCError.self) {
        try await district.asUser(District.user(.principal)) { client in
          _ = try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with { $0.kindergartenCode = District.kindergartenB })
        }
      }
      #expect(denied?.code == .permissionDenied)
      let text = try await scrape(url)
      #expect(sample(text, "pemis_rpc_calls_total", ["listener": "wire", "service": "pemis.v1.Session", "method": "WhoAmI", "code": "OK"]) == 1)
      #expect(
        sample(text, "pemis_rpc_calls_total", ["listener": "wire", "service": "pemis.v1.Audit", "method": "QueryAuditLog", "code": "PERMISSION_DENIED"])
          == 1)
      // Two logins (one per asUser) and the WhoAmI, timed.
      #expect(sample(text, "pemis_rpc_call_duration_seconds_count", ["listener": "wire", "service": "pemis.v1.Session", "method": "Login"]) == 2)
      #expect(sample(text, "pemis_rpc_calls_in_flight", ["listener": "wire"]) == 0)
      #expect(text.contains("# HELP pemis_rpc_calls_total "))
      #expect(text.contains("# TYPE pemis_rpc_call_duration_seconds histogram"))
    }
  }

  @Test("a scrape shows the registry's state, the pool, the audit log, commits and connections")
  func state() async throws {
    try await withMetrics { district, url in
      _ = try await district.asUser(District.user(.principal)) { client in
        try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
      }
      let text = try await scrape(url)
      for state in ["requested", "out", "accepting", "completed", "cancelled", "declined", "failed", "aborted"] {
        #expect(sample(text, "pemis_transfers", ["state": state]) == 0, "pemis_transfers{state=\(state)}")
      }
      #expect(sample(text, "pemis_transfer_oldest_in_flight_age_seconds") == 0)
      #expect(sample(text, "pemis_index_reservations_open") == 0)
      #expect(sample(text, "pemis_duplicate_cases_open") == 0)
      #expect(sample(text, "pemis_obligations_overdue", ["kind": "enrollment", "article": "Art. 15(3)"]) != nil)
      #expect(sample(text, "pemis_registry_unreadable") == 0)
      // The login is audited (WhoAmI is not: it changes and reveals nothing).
      #expect((sample(text, "pemis_audit_appends_total") ?? 0) >= 1)
      #expect(sample(text, "pemis_audit_append_failures_total") == 0)
      #expect((sample(text, "pemis_store_commit_duration_seconds_count", ["database": "registry"]) ?? 0) >= 1)
      #expect(sample(text, "pemis_shards_open_limit") == 256)
      #expect(sample(text, "pemis_wire_buffer_budget_bytes") == Double(64 * 1024 * 1024))
      #expect(sample(text, "pemis_wire_connections_limit") != nil)
      #expect(sample(text, "pemis_build_info", ["version": ServerStatus.version]) == 1)
    }
  }

  @Test("a transfer left mid-step shows its age; a wrong password is counted by its reason")
  func stuckTransferAndLogins() async throws {
    try await withMetrics { district, url in
      try await plantStuckTransfer(district, age: 7200)
      await #expect(throws: RPCError.self) { try await district.login(District.user(.principal), "not-the-password") }
      let text = try await scrape(url)
      #expect(sample(text, "pemis_transfers", ["state": "accepting"]) == 1)
      #expect(sample(text, "pemis_transfer_oldest_in_flight_age_seconds") == 7200)
      #expect(sample(text, "pemis_login_failures_total", ["reason": "wrong-password"]) == 1)
    }
  }

  @Test("no personal identifier in any label or value: the metrics of a district with children")
  func noPersonalData() async throws {
    try await withMetrics { district, url in
      _ = try await district.asUser(District.user(.administrator)) { client in
        try await Pemis_V1_ChildRecords.Client(wrapping: client).enrollChild(.with { $0.child = KindergartenDataFixtures.child() })
      }
      let text = try await scrape(url)
      #expect((sample(text, "pemis_rpc_calls_total", ["listener": "wire", "service": "pemis.v1.ChildRecords", "method": "EnrollChild", "code": "OK"])) == 1)
      #expect(!text.contains(KindergartenDataFixtures.childID), "an ID number is in the metrics")
      #expect(!text.contains("张小明") && !text.contains("13800138000"))
      #expect(!text.contains(District.kindergartenA), "a kindergarten code is in the metrics")
      #expect(text.range(of: #"\d{17}[\dX]"#, options: .regularExpression) == nil, "an ID number is in the metrics")
      #expect(!text.contains(District.user(.administrator)), "a username is in the metrics")
    }
  }

  @Test("only GET and HEAD of /metrics are answered")
  func http() async throws {
    try await withMetrics { _, url in
      let other = try await fetch(url.deletingLastPathComponent().appendingPathComponent("admin"))
      #expect(other.status == 404)
      let post = try await fetch(url, method: "POST")
      #expect(post.status == 405)
      let head = try await fetch(url, method: "HEAD")
      #expect(head.status == 200)
      #expect(head.body.isEmpty)
      let get = try await fetch(url)
      #expect(get.status == 200)
      #expect(get.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
    }
  }

  @Test("the alert rules pass promtool, and a real Prometheus fires PEMISTransferStuck for a planted stuck transfer")
  func prometheusFiresTheAlert() async throws {
    let rules = repositoryRoot.appendingPathComponent("Config/prometheus/alerts.yml").path
    let promtool = try #require(Self.tool("promtool"), "promtool is missing: tools/setup.sh installs Debian's prometheus package")
    let checked = try await run(promtool, ["check", "rules", rules])
    #expect(checked.status == 0, "promtool: \(checked.stdout) \(checked.stderr)")
    let prometheus = try #require(Self.tool("prometheus"), "prometheus is missing: tools/setup.sh installs it")
    try await withMetrics { district, url in
      try await plantStuckTransfer(district, age: 7200)
      let work = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-prometheus-\(UUID())")
      try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(at: work) }
      let config = """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files:
          - \(rules)
        scrape_configs:
          - job_name: pemis
            static_configs:
              - targets: ["\(url.host!):\(url.port!)"]
        """
      try config.write(to: work.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
      let port = try freePort()
      let process = Process()
      process.executableURL = prometheus
      process.arguments = [
        "--config.file=\(work.appendingPathComponent("prometheus.yml").path)",
        "--storage.tsdb.path=\(work.appendingPathComponent("tsdb").path)", "--web.listen-address=127.0.0.1:\(port)",
      ]
      let log = work.appendingPathComponent("prometheus.log")
      _ = FileManager.default.createFile(atPath: log.path, contents: nil)
      let handle = try FileHandle(forWritingTo: log)
      process.standardOutput = handle
      process.standardError = handle
      try process.run()
      defer {
        process.terminate()
        process.waitUntilExit()
      }
      // Firing: scraped, evaluated (no `for:` on this rule), within a few seconds.
      let alerts = URL(string: "http://127.0.0.1:\(port)/api/v1/alerts")!
      var firing = false
      var last = ""
      for _ in 0..<60 where !firing {
        try await Task.sleep(for: .seconds(1))
        guard let answer = try? await fetch(alerts), answer.status == 200 else { continue }
        last = String(decoding: answer.body, as: UTF8.self)
        let json = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        let list = ((json?["data"] as? [String: Any])?["alerts"] as? [[String: Any]]) ?? []
        firing = list.contains { alert in
          (alert["labels"] as? [String: String])?["alertname"] == "PEMISTransferStuck" && alert["state"] as? String == "firing"
        }
      }
      #expect(firing, "PEMISTransferStuck did not fire within a minute; alerts: \(last); log: \((try? String(contentsOf: log, encoding: .utf8))?.suffix(2000) ?? "")")
    }
  }

  // MARK: Helpers

  /// A transfer in `accepting`, entered `age` seconds ago by the server's clock: what a step
  /// that never finished leaves (recovery would finish a real one; this one names no child).
  func plantStuckTransfer(_ district: District, age: Int64) async throws {
    let now = district.clock.now
    try await district.registry.writer.write { db in
      try db.execute(
        sql: """
          INSERT INTO transfer (id, recordNumber, fromCode, toCode, appliedOn, state, requestedBy, requestedAt, updatedAt)
          VALUES ('T-planted-1', 'G000000000000000000', ?, ?, '2026-09-01', 'accepting', 'test', ?, ?)
          """,
        arguments: [District.kindergartenA, District.kindergartenB, now - age, now - age])
    }
  }

  func scrape(_ url: URL) async throws -> String {
    let answer = try await fetch(url)
    try #require(answer.status == 200)
    return String(decoding: answer.body, as: UTF8.self)
  }

  /// The value of the sample `name{labels}` (labels in any order; exactly these), nil if absent.
  func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
      let rest = line.dropFirst(name.count)
      var found: [String: String] = [:]
      var valueText = rest
      if rest.hasPrefix("{") {
        guard let close = rest.firstIndex(of: "}") else { continue }
        for pair in rest[rest.index(after: rest.startIndex)..<close].split(separator: ",") {
          let parts = pair.split(separator: "=", maxSplits: 1)
          guard parts.count == 2 else { continue }
          found[String(parts[0])] = String(parts[1].dropFirst().dropLast())
        }
        valueText = rest[rest.index(after: close)...]
      } else if !rest.hasPrefix(" ") {
        continue  // another metric whose name starts with this one
      }
      if found == labels, let value = Double(valueText.trimmingCharacters(in: .whitespaces)) { return value }
    }
    return nil
  }

  struct Answer: Sendable {
    var status: Int
    var contentType: String?
    var body: [UInt8]
  }

  func fetch(_ url: URL, method: String = "GET") async throws -> Answer {
    var request = URLRequest(url: url)
    request.httpMethod = method
    let (data, response) = try await URLSession.shared.data(for: request)
    let http = response as? HTTPURLResponse
    return Answer(status: http?.statusCode ?? 0, contentType: http?.value(forHTTPHeaderField: "Content-Type"), body: Array(data))
  }

  static func tool(_ name: String) -> URL? {
    ["/usr/bin", "/usr/local/bin", "/bin"].map { URL(fileURLWithPath: $0).appendingPathComponent(name) }
      .first { FileManager.default.isExecutableFile(atPath: $0.path) }
  }

  /// A TCP port nothing listens on now (bound and released: Prometheus cannot be asked for port 0
  /// and tell it back).
  func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ServerProcessError(message: "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}
