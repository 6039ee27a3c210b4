import Foundation
import GRDB
import GRPCCore
import PEMISClient
import PEMISProto
import SwiftProtobuf
import Testing

/// `pemis-server admin …` as the operator runs it on the server host.
@Suite("Break-glass from the command line", .serialized)
struct BreakGlassTests {
  let server = productsDirectory.appendingPathComponent("pemis-server")

  /// Runs `pemis-server` with `input` on its standard input.
  func run(_ arguments: [String], input: String) async throws -> ProcessOutput {
    let server = self.server
    return try await offCooperativePool { try Self.runBlocking(server, arguments, input: input) }
  }

  static func runBlocking(_ server: URL, _ arguments: [String], input: String) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = server
    process.arguments = arguments
    let stdin = Pipe()
    let out = Pipe()
    let err = Pipe()
    process.standardInput = stdin
    process.standardOutput = out
    process.standardError = err
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessOutput(
      status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
      stderr: String(decoding: stderr, as: UTF8.self))
  }

  @Test("unseal, reset-password and create-district-admin work without a login, each audited in the chain")
  func adminSteps() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-admin-\(UUID())/data").path
    defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
    let data = ["--data-dir", dir, "--password-hash-cost", "10"]
    #expect(try await PEMISServerTests.run(server, ["init"] + data).status == 0)

    // Not sealed: refused, with the reason.
    let notSealed = try await PEMISServerTests.run(server, ["admin", "unseal", "admin"] + data)
    #expect(notSealed.status == 1)
    #expect(notSealed.stderr.contains("is not sealed"), "\(notSealed.stderr)")
    let registry = (dir as NSString).appendingPathComponent("registry.sqlite")
    try await DatabaseQueue(path: registry).write { db in try db.execute(sql: "UPDATE account SET sealed = 1 WHERE username = 'admin'") }
    let unsealed = try await PEMISServerTests.run(server, ["admin", "unseal", "admin"] + data)
    #expect(unsealed.status == 0, "\(unsealed.stderr)")
    #expect(unsealed.stdout.contains("unsealed admin"))

    let reset = try await PEMISServerTests.run(server, ["admin", "reset-password", "admin"] + data)
    #expect(reset.status == 0, "\(reset.stderr)")
    let generated = reset.stdout.split(separator: "\n").first { $0.hasPrefix("one-time password") }?.split(separator: " ").last
    #expect(generated?.count == 12)

    let weak = try await run(["admin", "create-district-admin", "ops.two", "--password-stdin"] + data, input: "short\n")
    #expect(weak.status == 1)
    #expect(weak.stderr.contains("password"), "\(weak.stderr)")
    let created = try await run(["admin", "create-district-admin", "ops.two", "--name", "值班管理员", "--password-stdin"] + data, input: "Ops-two-2026\n")
    #expect(created.status == 0, "\(created.stderr)")
    #expect(!created.stdout.contains("Ops-two-2026"))
    #expect(try await PEMISServerTests.run(server, ["admin", "reset-password", "nobody.here"] + data).status == 1)

    // Each step taken or refused between its two entries (STARTED first: no step without its
    // entry), one intact chain.
    let verify = try await PEMISServerTests.run(server, ["audit", "verify", "--data-dir", dir])
    #expect(verify.status == 0, "\(verify.stdout)")
    let methods = try await DatabaseQueue(path: registry).read { db in
      try String.fetchAll(db, sql: "SELECT method || ' ' || targets || ' ' || result FROM audit_log ORDER BY seq")
    }
    #expect(verify.stdout.contains("audit log intact: \(methods.count) entries"), "\(verify.stdout)")
    #expect(
      methods.filter { !$0.hasSuffix(" STARTED") } == [
        "pemis-server admin unseal account:admin FAILED_PRECONDITION", "pemis-server admin unseal account:admin OK",
        "pemis-server admin reset-password account:admin OK", "pemis-server admin create-district-admin account:ops.two OK",
        "pemis-server admin reset-password account:nobody.here NOT_FOUND",
      ], "\(methods)")
    #expect(methods.filter { $0.hasSuffix(" STARTED") }.count == 5)

    // The passwords work, as one-time passwords, against the real server.
    let process = try await ServerProcess.start(dataDirectory: dir)
    defer { _ = process.stopBlocking() }
    let address = try ServerAddress(parsing: process.address)
    for (user, password) in [("admin", String(generated ?? "")), ("ops.two", "Ops-two-2026")] {
      let login = try await withPEMISClient(address) { client in
        try await Pemis_V1_Session.Client(wrapping: client).login(.with {
          $0.username = user
          $0.password = password
        })
      }
      #expect(login.passwordChangeRequired)
      #expect(login.account.role == .districtAdmin)
    }
  }
}
