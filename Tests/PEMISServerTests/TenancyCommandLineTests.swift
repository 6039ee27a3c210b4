import Foundation
import GRDB
import Testing

/// The tenancy commands as a user runs them.
@Suite("Tenancy from the command line", .serialized)
struct TenancyCommandLineTests {
  let server = productsDirectory.appendingPathComponent("pemis-server")

  @Test("the README's onboarding walkthrough runs end to end (tools/demo-onboarding.sh)")
  func walkthrough() async throws {
    let output = try await run(
      URL(fileURLWithPath: "/bin/bash"),
      [repositoryRoot.appendingPathComponent("tools/demo-onboarding.sh").path, productsDirectory.path], timeout: 300)
    #expect(output.status == 0, "\(output.stdout.suffix(3000))\n\(output.stderr.suffix(2000))")
    #expect(output.stdout.contains("kindergarten 1112000101 滨海新区第一幼儿园 is active"))
    #expect(output.stdout.contains("kindergarten 1112000102 海星幼儿园 is active"))
    #expect(output.stderr.contains("PERMISSION_DENIED"))
    #expect(output.stdout.contains("audit log intact"))
    // Operations: the log and the metrics of the whole walkthrough, checked for personal data.
    #expect(output.stdout.contains("no ID number, phone number or name in either"))
    #expect(output.stdout.contains("demo complete"))
  }

  @Test("init creates the first administrator once; audit verify notices tampering")
  func initAndVerify() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-cli-\(UUID())/data").path
    let first = try await run(server, ["init", "--data-dir", dir, "--password-hash-cost", "10"])
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.contains("district administrator: admin"))
    let password = first.stdout.split(separator: "\n").first { $0.hasPrefix("one-time password") }?.split(separator: " ").last
    #expect(password?.count == 12)
    let second = try await run(server, ["init", "--data-dir", dir])
    #expect(second.status == 1)
    #expect(second.stderr.contains("already initialized"))

    // Registry and data directory are for the owner only.
    let registry = (dir as NSString).appendingPathComponent("registry.sqlite")
    let mode = (try FileManager.default.attributesOfItem(atPath: registry)[.posixPermissions] as? NSNumber)?.intValue
    #expect(mode == 0o600)

    let intact = try await run(server, ["audit", "verify", "--data-dir", dir])
    #expect(intact.status == 0)
    #expect(intact.stdout.contains("audit log intact: 0 entries"))
    // Entries slipped in behind the server's back, without a valid chain.
    let queue = try DatabaseQueue(path: registry)
    try await queue.write { db in
      for n in 1...3 {
        try db.execute(
          sql: "INSERT INTO audit_log (atMs, username, role, kindergartenCode, method, targets, result, peer, prevHash, hash) VALUES (?, 'x', '', '', '/m', '', 'OK', '', ?, ?)",
          arguments: [n, "", ""])
      }
    }
    let verify = try await run(server, ["audit", "verify", "--data-dir", dir])
    #expect(verify.status == 1)
    #expect(verify.stdout.contains("BROKEN at entry 1"))
  }
}
