import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISStore
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer

/// Runs `body` with a standard gRPC client (grpc-swift-nio-transport, HTTP/2, plaintext) connected
/// to `address`, carrying the session token when given.
func withHTTP2Client<R: Sendable>(
  _ address: ServerAddress, token: String? = nil,
  _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> R
) async throws -> R {
  let transport = try HTTP2ClientTransport.Posix(
    target: .ipv4(address: address.host, port: address.port), transportSecurity: .plaintext)
  let interceptors: [any ClientInterceptor] = token.map { [BearerTokenInterceptor(token: $0)] } ?? []
  return try await withGRPCClient(transport: transport, interceptors: interceptors) { client in
    try await body(client)
  }
}

/// The optional second listener: standard gRPC over HTTP/2, the same services behind the same
/// access control as PEMIS wire, in the same server.
@Suite("standard gRPC over HTTP/2")
struct HTTP2ListenerTests {
  /// A district whose server also listens for HTTP/2 on a free port.
  func withHTTP2District<R: Sendable>(_ body: (District, ServerAddress) async throws -> R) async throws -> R {
    try await withDistrict({ $0.http2Port = 0 }) { district in
      let http2 = try #require(district.http2Address)
      #expect(http2 != district.address)
      return try await body(district, http2)
    }
  }

  @Test("Health is served over HTTP/2: SERVING, the version, protocol 0 (not PEMIS wire)")
  func health() async throws {
    try await withHTTP2District { _, http2 in
      let response = try await withHTTP2Client(http2) { client in
        try await Pemis_V1_Health.Client(wrapping: client).check(.init())
      }
      #expect(response.status == .serving)
      #expect(response.version == ServerStatus.version)
      #expect(response.protocolVersion == 0)
      let child = try await withHTTP2Client(http2) { client in
        try await Pemis_V1_Health.Client(wrapping: client).check(.with {
          $0.service = Pemis_V1_ChildRecords.descriptor.fullyQualifiedService
        })
      }
      #expect(child.status == .serving)
    }
  }

  @Test("log in over HTTP/2, then call an authenticated method with the session token")
  func loginAndAuthenticatedCall() async throws {
    try await withHTTP2District { district, http2 in
      let login = try await withHTTP2Client(http2) { client in
        try await Pemis_V1_Session.Client(wrapping: client).login(.with {
          $0.username = District.user(.principal)
          $0.password = District.password
        })
      }
      #expect(!login.token.isEmpty)
      let kindergarten = try await withHTTP2Client(http2, token: login.token) { client in
        try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.init())
      }
      #expect(kindergarten.institutionCode == District.kindergartenA)
      let children = try await withHTTP2Client(http2, token: login.token) { client in
        try await Pemis_V1_ChildRecords.Client(wrapping: client).listChildren(.init())
      }
      #expect(children.children.isEmpty)

      // One session, both transports: the token from an HTTP/2 login works over PEMIS wire.
      let overWire = try await withPEMISClient(district.address, token: login.token) { client in
        try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.init())
      }
      #expect(overWire.institutionCode == District.kindergartenA)

      // The same audit log: the HTTP/2 call is there, with its peer.
      let (entries, _) = try await district.registry.auditEntries(
        .init(username: District.user(.principal)), offset: 0, limit: 100)
      let reads = entries.filter { $0.method == "/pemis.v1.Kindergartens/GetKindergarten" }
      #expect(reads.count == 2)
      #expect(reads.allSatisfy { $0.result == "OK" && $0.kindergartenCode == District.kindergartenA })
      #expect(reads.allSatisfy { $0.peer.hasPrefix("ipv4:127.0.0.1:") })
    }
  }

  @Test("a call without a session is refused with UNAUTHENTICATED, exactly as over PEMIS wire")
  func unauthenticated() async throws {
    try await withHTTP2District { district, http2 in
      let overHTTP2 = await #expect(throws: RPCError.self) {
        try await withHTTP2Client(http2) { client in
          try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.init())
        }
      }
      let overWire = await #expect(throws: RPCError.self) {
        try await withPEMISClient(district.address) { client in
          try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.init())
        }
      }
      #expect(overHTTP2?.code == .unauthenticated)
      #expect(overHTTP2?.code == overWire?.code)
      #expect(overHTTP2?.message == overWire?.message)
      #expect(overHTTP2?.message.contains("authorization: missing session token") == true)

      let badToken = await #expect(throws: RPCError.self) {
        try await withHTTP2Client(http2, token: "not-a-session") { client in
          try await Pemis_V1_ChildRecords.Client(wrapping: client).listChildren(.init())
        }
      }
      #expect(badToken?.code == .unauthenticated)
    }
  }

  @Test("another kindergarten's children are refused with PERMISSION_DENIED over HTTP/2, and audited")
  func wrongTenant() async throws {
    try await withHTTP2District { district, http2 in
      let token = try await withHTTP2Client(http2) { client in
        try await Pemis_V1_Session.Client(wrapping: client).login(.with {
          $0.username = District.user(.principal)
          $0.password = District.password
        }).token
      }
      let denied = await #expect(throws: RPCError.self) {
        try await withHTTP2Client(http2, token: token) { client in
          try await Pemis_V1_ChildRecords.Client(wrapping: client).listChildren(.with {
            $0.kindergartenCode = District.kindergartenB
          })
        }
      }
      #expect(denied?.code == .permissionDenied)
      #expect(denied?.message.contains("/pemis.v1.ChildRecords/ListChildren") == true)
      let (entries, _) = try await district.registry.auditEntries(
        .init(username: District.user(.principal)), offset: 0, limit: 100)
      #expect(entries.contains { $0.method == "/pemis.v1.ChildRecords/ListChildren" && $0.result == "PERMISSION_DENIED" })
    }
  }

  @Test("without http2Port there is no HTTP/2 listener")
  func offByDefault() async throws {
    #expect(ServerConfiguration.defaults.http2Port == nil)
    try await withRunningServer { _, configuration in
      #expect(configuration.http2Port == nil)
    }
    let server = try PEMISServer(
      configuration: {
        var configuration = ServerConfiguration.defaults
        configuration.memoryLimitBytes = 0
        configuration.dataDirectory = FileManager.default.temporaryDirectory
          .appendingPathComponent("pemis-test-\(UUID())/data").path
        configuration.calendarDirectory = repositoryRoot.appendingPathComponent("Config/calendar").path
        return configuration
      }(), logger: .init(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    #expect(try await server.http2ListeningHostAndPort == nil)
  }

  /// A bidirectional Echo call known to be running on the server when `inFlight` is called (its
  /// first answer has come back); its second message is answered after `delayMs`. Returns the
  /// texts answered. No sleeping on the client's side: the order is what the test relies on.
  static func callInFlight<T: ClientTransport>(
    _ client: GRPCClient<T>, delayMs: UInt32, inFlight: @escaping @Sendable () -> Void
  ) async throws -> [String] {
    let (answered, firstAnswer) = AsyncStream<Void>.makeStream()
    return try await Pemis_V1_Echo.Client(wrapping: client).update(
      requestProducer: { writer in
        try await writer.write(.with { $0.text = "started" })
        for await _ in answered { break }
        try await writer.write(.with {
          $0.text = "finished"
          $0.delayMs = delayMs
        })
      },
      onResponse: { response in
        var texts: [String] = []
        for try await message in response.messages {
          texts.append(message.text)
          if texts.count == 1 {
            inFlight()
            firstAnswer.yield()
          }
        }
        return texts
      })
  }

  /// Sends SIGTERM to `server` once `calls` calls are in flight; returns its exit status and log.
  static func terminate(_ server: ServerProcess, after calls: Int, signals: AsyncStream<Void>) async -> (
    status: Int32, log: String
  ) {
    var seen = 0
    for await _ in signals {
      seen += 1
      if seen == calls { break }
    }
    return await withCheckedContinuation { continuation in
      DispatchQueue.global().async { continuation.resume(returning: server.stopBlocking(signal: SIGTERM)) }
    }
  }

  @Test("pemis-server --http2-port 0 prints both addresses; SIGTERM lets calls in flight on both finish")
  func processBothListenersAndGracefulShutdown() async throws {
    let server = try await ServerProcess.start(extraArguments: ["--diagnostics", "true", "--http2-port", "0"])
    let http2 = ServerAddress(host: "127.0.0.1", port: try #require(server.http2Port))
    #expect(http2.port != server.port)
    let (signals, inFlight) = AsyncStream<Void>.makeStream()
    async let overHTTP2 = Result {
      try await withHTTP2Client(http2) { client in
        try await Self.callInFlight(client, delayMs: 2000) { inFlight.yield() }
      }
    }
    async let overWire = Result {
      try await withPEMISClient(ServerAddress(host: "127.0.0.1", port: server.port)) { client in
        try await Self.callInFlight(client, delayMs: 2000) { inFlight.yield() }
      }
    }
    // Both calls are running on the server (each has had its first answer) when SIGTERM goes.
    let (status, log) = await Self.terminate(server, after: 2, signals: signals)
    let (http2Result, wireResult) = await (overHTTP2, overWire)
    #expect(throws: Never.self, "over HTTP/2") { try #require(try http2Result.get() == ["started", "finished"]) }
    #expect(throws: Never.self, "over PEMIS wire") { try #require(try wireResult.get() == ["started", "finished"]) }
    #expect(status == 0, "log: \(log)")
  }

  @Test("a call over HTTP/2 still running when the grace period ends is cut off, and the server exits 0")
  func graceExpires() async throws {
    let server = try await ServerProcess.start(extraArguments: ["--diagnostics", "true", "--http2-port", "0", "--grace-period", "1"])
    let http2 = ServerAddress(host: "127.0.0.1", port: try #require(server.http2Port))
    let (signals, inFlight) = AsyncStream<Void>.makeStream()
    // 60 s: far longer than stop() waits (30 s) before it would kill the server.
    async let call = Result {
      try await withHTTP2Client(http2) { client in
        try await Self.callInFlight(client, delayMs: 60_000) { inFlight.yield() }
      }
    }
    let (status, log) = await Self.terminate(server, after: 1, signals: signals)
    #expect(status == 0, "log: \(log)")
    let outcome = await call
    #expect(throws: RPCError.self) { try outcome.get() }
  }

  @Test("an HTTP/2 port already taken stops pemis-server at start, naming http2Port")
  func portTaken() async throws {
    let first = try await ServerProcess.start()
    let output = try await run(
      productsDirectory.appendingPathComponent("pemis-server"),
      [
        "serve", "--port", "0", "--http2-port", "\(first.port)", "--log-level", "warning",
        "--data-dir", FileManager.default.temporaryDirectory.appendingPathComponent("pemis-proc-\(UUID())/data").path,
      ], timeout: 60)
    #expect(output.status != 0)
    #expect(output.stderr.contains("http2Port cannot serve gRPC over HTTP/2 on 127.0.0.1:\(first.port)"), "\(output.stderr)")
    #expect(await first.stop().status == 0)
  }
}
