import Foundation
import PEMISDomain
import Testing

/// The C client in tools/c-client, written from docs/PROTOCOL.md alone, against a real server:
/// the proof that the protocol page is enough to interoperate.
@Suite("C client over PEMIS wire", .serialized)
struct CClientTests {
  static let client = repositoryRoot.appendingPathComponent("tools/c-client/build/pemis-c-client")

  /// Builds the client with make (protoc-c and libprotobuf-c come from tools/setup.sh).
  static func build() async throws {
    let output = try await run(URL(fileURLWithPath: "/usr/bin/make"), ["-s", "-C", repositoryRoot.appendingPathComponent("tools/c-client").path])
    try #require(output.status == 0, "make failed: \(output.stdout)\(output.stderr)")
  }

  @Test("builds, then calls Health and unary Echo against pemis-server")
  func healthAndEcho() async throws {
    try await Self.build()
    let server = try await ServerProcess.start(extraArguments: ["--diagnostics", "true"])
    let health = try await run(Self.client, ["127.0.0.1", "\(server.port)", "health"])
    #expect(health.status == 0, "stderr: \(health.stderr)")
    #expect(health.stdout == "status=SERVING version=0.1.0 protocol=1\n")
    let echo = try await run(Self.client, ["127.0.0.1", "\(server.port)", "echo", "你好, Binhai"])
    #expect(echo.status == 0, "stderr: \(echo.stderr)")
    #expect(echo.stdout == "echo=你好, Binhai\n")
    #expect(await server.stop().status == 0)
  }

  @Test("a deadline set by the C client is enforced by the server")
  func deadline() async throws {
    try await Self.build()
    let server = try await ServerProcess.start(extraArguments: ["--diagnostics", "true"])
    let late = try await run(Self.client, ["127.0.0.1", "\(server.port)", "echo", "slow", "--delay-ms", "3000", "--timeout-ms", "200"])
    #expect(late.status == 2)
    #expect(late.stderr.contains("code=4"))
    #expect(await server.stop().status == 0)
  }

  @Test("logs in and lists a seeded kindergarten's children, ID numbers masked, over one connection")
  func children() async throws {
    try await Self.build()
    let seeded = try await SeededServer.start()
    let port = "\(seeded.server.port)"
    let password = ["PEMIS_PASSWORD": SeededServer.password]
    let listed = try await run(
      Self.client, ["127.0.0.1", port, "children", "--user", SeededServer.user], environment: password)
    #expect(listed.status == 0, "stderr: \(listed.stderr)")
    let id = SeededServer.childID
    func mask(_ text: String) -> String { IDDocuments.mask(text) }
    #expect(
      listed.stdout
        == "child record=\(mask("G" + id)) id=\(mask(id)) type=resident_id name=张小明 gender=male born=2022-03-15 state=enrolled class=\n"
        + "children=1 total=1\n")
    #expect(!listed.stdout.contains(id), "a full ID number in a list")

    // The kindergarten named explicitly: the same list.
    let named = try await run(
      Self.client, ["127.0.0.1", port, "children", "--user", SeededServer.user, "--kindergarten", SeededServer.kindergarten],
      environment: password)
    #expect(named.stdout == listed.stdout, "stderr: \(named.stderr)")

    // Another kindergarten: refused, the rule named.
    let other = try await run(
      Self.client,
      ["127.0.0.1", port, "children", "--user", SeededServer.user, "--kindergarten", SeededServer.otherKindergarten],
      environment: password)
    #expect(other.status == 2)
    #expect(other.stderr.hasPrefix("error: code=7 (PERMISSION_DENIED) message="), "\(other.stderr)")
    #expect(other.stderr.contains("/pemis.v1.ChildRecords/ListChildren"))
    #expect(other.stdout.isEmpty)

    // A wrong password: the login is refused and nothing is listed.
    let wrong = try await run(
      Self.client, ["127.0.0.1", port, "children", "--user", SeededServer.user], environment: ["PEMIS_PASSWORD": "wrong"])
    #expect(wrong.status == 2)
    #expect(wrong.stderr.hasPrefix("error: code=16 (UNAUTHENTICATED)"), "\(wrong.stderr)")
    #expect(wrong.stdout.isEmpty)

    // Usage: the user is required.
    let usage = try await run(Self.client, ["127.0.0.1", port, "children"])
    #expect(usage.status == 1)
    #expect(usage.stderr.contains("children needs --user NAME"))
    #expect(await seeded.server.stop().status == 0)
  }

  @Test("over TLS: Health and Echo with --ca-file; refused without the CA, for another host's certificate, and in plaintext")
  func tls() async throws {
    try await Self.build()
    let certificates = try TestCertificates.make()
    func server(_ pair: TestCertificates.Pair) async throws -> ServerProcess {
      try await ServerProcess.start(extraArguments: [
        "--diagnostics", "true", "--tls-certificate-chain", pair.chainFile, "--tls-private-key", pair.keyFile,
      ])
    }
    let good = try await server(certificates.server)
    for host in ["127.0.0.1", "localhost"] {
      let health = try await run(Self.client, [host, "\(good.port)", "health", "--ca-file", certificates.caFile])
      #expect(health.status == 0, "stderr: \(health.stderr)")
      #expect(health.stdout == "status=SERVING version=0.1.0 protocol=1\n")
    }
    let echo = try await run(Self.client, ["127.0.0.1", "\(good.port)", "echo", "你好, Binhai", "--ca-file", certificates.caFile])
    #expect(echo.stdout == "echo=你好, Binhai\n", "stderr: \(echo.stderr)")
    // --tls alone trusts the system's store, which does not hold the test CA.
    let system = try await run(Self.client, ["127.0.0.1", "\(good.port)", "health", "--tls"])
    #expect(system.status == 3)
    #expect(system.stderr.contains("certificate"), "\(system.stderr)")
    // Plaintext to a TLS server: a clean failure, and the server serves on.
    let plaintext = try await run(Self.client, ["127.0.0.1", "\(good.port)", "health", "--timeout-ms", "5000"])
    #expect(plaintext.status == 3 || plaintext.status == 2, "\(plaintext.stderr)")
    let again = try await run(Self.client, ["127.0.0.1", "\(good.port)", "health", "--ca-file", certificates.caFile])
    #expect(again.status == 0, "stderr: \(again.stderr)")
    #expect(await good.stop().status == 0)

    let wrongHost = try await server(certificates.wrongHost)
    let refused = try await run(Self.client, ["127.0.0.1", "\(wrongHost.port)", "health", "--ca-file", certificates.caFile])
    #expect(refused.status == 3)
    #expect(refused.stderr.contains("certificate"), "\(refused.stderr)")
    #expect(await wrongHost.stop().status == 0)
  }

  @Test("no server: the C client says so and exits 3")
  func refused() async throws {
    try await Self.build()
    let output = try await run(Self.client, ["127.0.0.1", "1", "health"])
    #expect(output.status == 3)
    #expect(output.stderr.hasPrefix("error:"))
  }
}
