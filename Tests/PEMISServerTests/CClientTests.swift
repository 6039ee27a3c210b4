import Foundation
import Testing

/// The C client in tools/c-client, written from docs/PROTOCOL.md alone, against a real server:
/// the proof that the protocol page is enough to interoperate.
@Suite("C client over PEMIS wire", .serialized)
struct CClientTests {
  static let client = repositoryRoot.appendingPathComponent("tools/c-client/build/pemis-c-client")

  /// Builds the client with make (protoc-c and libprotobuf-c come from tools/setup.sh).
  static func build() throws {
    let output = try run(URL(fileURLWithPath: "/usr/bin/make"), ["-s", "-C", repositoryRoot.appendingPathComponent("tools/c-client").path])
    try #require(output.status == 0, "make failed: \(output.stdout)\(output.stderr)")
  }

  @Test("builds, then calls Health and unary Echo against pemis-server")
  func healthAndEcho() throws {
    try Self.build()
    let server = try ServerProcess()
    let health = try run(Self.client, ["127.0.0.1", "\(server.port)", "health"])
    #expect(health.status == 0, "stderr: \(health.stderr)")
    #expect(health.stdout == "status=SERVING version=0.1.0 protocol=1\n")
    let echo = try run(Self.client, ["127.0.0.1", "\(server.port)", "echo", "你好, Binhai"])
    #expect(echo.status == 0, "stderr: \(echo.stderr)")
    #expect(echo.stdout == "echo=你好, Binhai\n")
    #expect(server.stop().status == 0)
  }

  @Test("a deadline set by the C client is enforced by the server")
  func deadline() throws {
    try Self.build()
    let server = try ServerProcess()
    let late = try run(Self.client, ["127.0.0.1", "\(server.port)", "echo", "slow", "--delay-ms", "3000", "--timeout-ms", "200"])
    #expect(late.status == 2)
    #expect(late.stderr.contains("code=4"))
    #expect(server.stop().status == 0)
  }

  @Test("no server: the C client says so and exits 3")
  func refused() throws {
    try Self.build()
    let output = try run(Self.client, ["127.0.0.1", "1", "health"])
    #expect(output.status == 3)
    #expect(output.stderr.hasPrefix("error:"))
  }
}
