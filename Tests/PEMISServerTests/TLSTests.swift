import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import PEMISClient
import PEMISProto
import PEMISWire
import Testing

@testable import PEMISServer

/// TLS on both listeners, from the outside: real clients with and without the CA, certificates
/// for the wrong host or out of date, a plaintext client, a server on the network without TLS,
/// and a certificate renewed under a running server process by SIGHUP.
@Suite("TLS")
struct TLSTests {
  static func health(_ address: ServerAddress, _ security: ClientSecurity) async throws -> Pemis_V1_HealthCheckResponse {
    try await withPEMISClient(address, security: security) { client in
      try await Pemis_V1_Health.Client(wrapping: client).check(.init())
    }
  }

  /// What a failed call says; fails the test when the call succeeds.
  static func refusal(_ address: ServerAddress, _ security: ClientSecurity) async -> RPCError? {
    await #expect(throws: RPCError.self) { _ = try await health(address, security) }
  }

  static func withTLSServer<R: Sendable>(
    _ pair: TestCertificates.Pair, http2: Bool = false, _ body: (ServerAddress, ServerConfiguration) async throws -> R
  ) async throws -> R {
    try await withRunningServer({
      $0.tlsCertificateChainFile = pair.chainFile
      $0.tlsPrivateKeyFile = pair.keyFile
      if http2 { $0.http2Port = 0 }
    }, body)
  }

  @Test("the Swift client with the CA: a call over PEMIS wire by IP address and by name")
  func roundTrip() async throws {
    let certificates = try TestCertificates.make()
    try await Self.withTLSServer(certificates.server) { address, _ in
      let byIP = try await Self.health(address, .tls(caFile: certificates.caFile))
      #expect(byIP.status == .serving)
      let byName = try await Self.health(
        ServerAddress(host: "localhost", port: address.port), .tls(caFile: certificates.caFile))
      #expect(byName.status == .serving)
    }
  }

  @Test("gRPC over HTTP/2 speaks TLS with the same certificate; plaintext HTTP/2 is refused")
  func http2() async throws {
    let certificates = try TestCertificates.make()
    try await withDistrict({
      $0.tlsCertificateChainFile = certificates.server.chainFile
      $0.tlsPrivateKeyFile = certificates.server.keyFile
      $0.http2Port = 0
    }) { district in
      let http2 = try #require(district.http2Address)
      let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: http2.host, port: http2.port),
        transportSecurity: .tls {
          $0.trustRoots = .certificates([.file(path: certificates.caFile, format: .pem)])
        })
      let response = try await withGRPCClient(transport: transport) { client in
        try await Pemis_V1_Health.Client(wrapping: client).check(.init())
      }
      #expect(response.status == .serving)
      // A plaintext HTTP/2 client never gets an answer; the deadline ends its wait for one.
      var options = CallOptions.defaults
      options.timeout = .seconds(5)
      await #expect(throws: RPCError.self) {
        _ = try await withHTTP2Client(http2) { client in
          try await Pemis_V1_Health.Client(wrapping: client).check(.init(), options: options)
        }
      }
    }
  }

  @Test("a client that does not know the CA is refused, and says it was TLS")
  func unknownCA() async throws {
    let certificates = try TestCertificates.make()
    try await Self.withTLSServer(certificates.server) { address, _ in
      // The system's trust store does not hold the test CA.
      let system = await Self.refusal(address, .tls(caFile: nil))
      #expect(system?.code == .unavailable)
      #expect(system?.message.contains("TLS handshake") == true, "\(system?.message ?? "")")
      // Nor does another CA.
      let other = await Self.refusal(address, .tls(caFile: certificates.otherCAFile))
      #expect(other?.message.contains("TLS handshake") == true)
    }
  }

  @Test("certificates the client must refuse: another host's, an expired one, one from an unknown CA")
  func refusedCertificates() async throws {
    let certificates = try TestCertificates.make()
    for pair in [certificates.wrongHost, certificates.expired, certificates.untrusted] {
      try await Self.withTLSServer(pair) { address, _ in
        for host in ["127.0.0.1", "localhost"] {
          let error = await Self.refusal(ServerAddress(host: host, port: address.port), .tls(caFile: certificates.caFile))
          #expect(error?.code == .unavailable, "\(pair.chainFile) via \(host)")
          #expect(error?.message.contains("TLS handshake") == true, "\(error?.message ?? "")")
        }
      }
    }
  }

  @Test("a plaintext client to a TLS server fails cleanly, and the server serves on")
  func plaintextClient() async throws {
    let certificates = try TestCertificates.make()
    try await Self.withTLSServer(certificates.server) { address, _ in
      for _ in 0..<3 {
        let error = await Self.refusal(address, .plaintext)
        #expect(error?.code == .unavailable)
      }
      let after = try await Self.health(address, .tls(caFile: certificates.caFile))
      #expect(after.status == .serving)
    }
  }

  @Test("a TLS client to a plaintext server fails with a TLS error rather than hanging")
  func tlsClientPlaintextServer() async throws {
    let certificates = try TestCertificates.make()
    try await withRunningServer { address, _ in
      let error = await Self.refusal(address, .tls(caFile: certificates.caFile))
      #expect(error?.code == .unavailable)
      #expect(error?.message.contains("TLS handshake") == true, "\(error?.message ?? "")")
    }
  }

  @Test("a certificate file that is missing, not PEM, or a key of another certificate stops the server, naming the setting")
  func badFiles() async throws {
    let certificates = try TestCertificates.make()
    let garbage = certificates.directory.appendingPathComponent("garbage.pem").path
    try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: garbage))
    let cases: [(chain: String, key: String, setting: String)] = [
      ("/nonexistent/chain.pem", certificates.server.keyFile, "tlsCertificateChainFile"),
      (garbage, certificates.server.keyFile, "tlsCertificateChainFile"),
      (certificates.server.chainFile, garbage, "tlsPrivateKeyFile"),
      (certificates.server.chainFile, certificates.wrongHost.keyFile, "tlsPrivateKeyFile"),
    ]
    for (chain, key, setting) in cases {
      let error = #expect(throws: ConfigurationError.self) { _ = try ServerCertificates(chainFile: chain, keyFile: key) }
      #expect(error?.key == setting, "\(chain) \(key): \(String(describing: error))")
    }
  }

  @Test("without TLS, a server on an address other than loopback refuses to start unless told --insecure")
  func networkNeedsTLS() async throws {
    for host in ["0.0.0.0", "192.0.2.10", "::", "kindergarten.example"] {
      var configuration = ServerConfiguration.defaults
      configuration.host = host
      let error = #expect(throws: ConfigurationError.self) { try configuration.validate() }
      #expect(error?.key == "host")
      #expect(error?.message.contains("--insecure") == true)
      configuration.insecure = true
      try configuration.validate()
      configuration.insecure = false
      configuration.tlsCertificateChainFile = "chain.pem"
      configuration.tlsPrivateKeyFile = "key.pem"
      try configuration.validate()
    }
    for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1"] {
      var configuration = ServerConfiguration.defaults
      configuration.host = host
      try configuration.validate()
    }
    var half = ServerConfiguration.defaults
    half.tlsCertificateChainFile = "chain.pem"
    #expect(throws: ConfigurationError.self) { try half.validate() }

    // The real process: refuses before it binds, naming the flag.
    let output = try await run(
      productsDirectory.appendingPathComponent("pemis-server"),
      ["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", certificatesScratch()])
    #expect(output.status != 0)
    #expect(output.stderr.contains("--insecure"), "\(output.stderr)")
    #expect(!output.stdout.contains("listening"))
  }

  func certificatesScratch() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("pemis-tls-data-\(UUID())").path
  }
}

/// `pemis` and `pemis-server` as a user runs them, over TLS.
@Suite("TLS from the command line", .serialized)
struct TLSCommandLineTests {
  let pemis = productsDirectory.appendingPathComponent("pemis")

  @Test("pemis verifies the server: --ca-file or PEMIS_CA_FILE works, without them it is refused, --plaintext fails cleanly")
  func pemisHealth() async throws {
    let certificates = try TestCertificates.make()
    let server = try await ServerProcess.start(extraArguments: [
      "--tls-certificate-chain", certificates.server.chainFile, "--tls-private-key", certificates.server.keyFile,
    ])
    let config = ["PEMIS_CONFIG_DIR": certificates.directory.appendingPathComponent("config").path]
    for host in ["127.0.0.1", "localhost"] {
      let ok = try await run(
        pemis, ["health", "--server", "\(host):\(server.port)", "--ca-file", certificates.caFile], environment: config)
      #expect(ok.status == 0, "stderr: \(ok.stderr)")
      #expect(ok.stdout.contains("SERVING"))
    }
    let fromEnvironment = try await run(
      pemis, ["health", "--server", server.address],
      environment: config.merging(["PEMIS_CA_FILE": certificates.caFile]) { $1 })
    #expect(fromEnvironment.status == 0, "stderr: \(fromEnvironment.stderr)")

    // TLS is the default: the system's trust store does not know the test CA.
    let untrusted = try await run(pemis, ["health", "--server", server.address], environment: config)
    #expect(untrusted.status == 1)
    #expect(untrusted.stderr.contains("TLS handshake"), "\(untrusted.stderr)")

    let plaintext = try await run(pemis, ["health", "--server", server.address, "--plaintext", "--timeout", "5"], environment: config)
    #expect(plaintext.status == 1)
    #expect(plaintext.stderr.contains("UNAVAILABLE"), "\(plaintext.stderr)")

    let again = try await run(pemis, ["health", "--server", server.address, "--ca-file", certificates.caFile], environment: config)
    #expect(again.status == 0, "the server stopped serving after a plaintext client: \(again.stderr)")
    #expect(await server.stop().status == 0)
  }

  @Test("pemis refuses a server whose certificate names another host")
  func pemisWrongHost() async throws {
    let certificates = try TestCertificates.make()
    let server = try await ServerProcess.start(extraArguments: [
      "--tls-certificate-chain", certificates.wrongHost.chainFile, "--tls-private-key", certificates.wrongHost.keyFile,
    ])
    let output = try await run(
      pemis, ["health", "--server", server.address, "--ca-file", certificates.caFile],
      environment: ["PEMIS_CONFIG_DIR": certificates.directory.appendingPathComponent("config").path])
    #expect(output.status == 1)
    #expect(output.stderr.contains("TLS handshake"), "\(output.stderr)")
    #expect(await server.stop().status == 0)
  }

  @Test("SIGHUP: new connections get the new certificate, an open connection keeps its own, a bad file keeps the old one")
  func reloadOnSIGHUP() async throws {
    let certificates = try TestCertificates.make()
    // The server reads these two paths; the test writes other certificates over them.
    let chain = certificates.directory.appendingPathComponent("live.crt").path
    let key = certificates.directory.appendingPathComponent("live.key").path
    func install(_ pair: TestCertificates.Pair) throws {
      for (from, to) in [(pair.chainFile, chain), (pair.keyFile, key)] {
        let data = try Data(contentsOf: URL(fileURLWithPath: from))
        try data.write(to: URL(fileURLWithPath: to + ".new"))
        _ = rename(to + ".new", to)
      }
    }
    try install(certificates.server)
    let server = try await LineServerProcess.start(arguments: [
      "serve", "--port", "0", "--data-dir", certificates.directory.appendingPathComponent("data").path,
      "--log-level", "warning", "--tls-certificate-chain", chain, "--tls-private-key", key,
    ])
    defer { server.kill() }
    let address = ServerAddress(host: "127.0.0.1", port: server.port)
    let trusted = ClientSecurity.tls(caFile: certificates.caFile)
    #expect(try await TLSTests.health(address, trusted).status == .serving)

    // One connection made under the first certificate, kept open across the reload.
    try await withPEMISClient(address, security: trusted) { open in
      let health = Pemis_V1_Health.Client(wrapping: open)
      #expect(try await health.check(.init()).status == .serving)

      try install(certificates.wrongHost)
      server.signal(SIGHUP)
      let line = try await server.nextLine(skipping: "pemis-server reloaded the working-day calendar")
      #expect(line == "pemis-server reloaded the TLS certificate", "\(line)")
      // A new connection meets the new certificate, which names another host.
      let error = await TLSTests.refusal(address, trusted)
      #expect(error?.message.contains("TLS handshake") == true, "\(error?.message ?? "")")
      // The open connection still works: it shook hands with the first certificate.
      #expect(try await health.check(.init()).status == .serving)
    }

    // A broken file is refused; the certificate last read stays in use.
    try Data("half a certificate".utf8).write(to: URL(fileURLWithPath: chain))
    server.signal(SIGHUP)
    let kept = try await server.nextLine(skipping: "pemis-server reloaded the working-day calendar")
    #expect(kept.hasPrefix("pemis-server kept the old TLS certificate"), "\(kept)")
    #expect(kept.contains("tlsCertificateChainFile"))
    #expect(await TLSTests.refusal(address, trusted)?.message.contains("TLS handshake") == true)

    // Back to a good certificate for this host.
    try install(certificates.server)
    server.signal(SIGHUP)
    #expect(try await server.nextLine(skipping: "pemis-server reloaded the working-day calendar") == "pemis-server reloaded the TLS certificate")
    #expect(try await TLSTests.health(address, trusted).status == .serving)
    #expect(await server.stop() == 0)
  }
}

/// A `pemis-server` process whose standard output is read line by line, for the lines it prints
/// after the first (SIGHUP reloads).
final class LineServerProcess: @unchecked Sendable {
  private let process = Process()
  private let output = Pipe()
  private var buffered = Data()
  private(set) var port = 0

  init(arguments: [String]) throws {
    process.executableURL = productsDirectory.appendingPathComponent("pemis-server")
    process.arguments = arguments
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let first = try nextLineUnchecked()
    guard let range = first.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
      let port = Int(first[range].split(separator: ":")[1])
    else {
      process.terminate()
      throw ServerProcessError(message: "pemis-server did not report its address: \(first)")
    }
    self.port = port
  }

  /// Starts the server and reads its address, off the cooperative pool.
  static func start(arguments: [String]) async throws -> LineServerProcess {
    try await offCooperativePool { try LineServerProcess(arguments: arguments) }
  }

  /// The next line the server prints; throws if it exits first. Waits (off the cooperative
  /// pool): the server prints the line when it has acted on the signal.
  func nextLine() async throws -> String { try await offCooperativePool { try self.nextLineUnchecked() } }

  /// The next line that does not start with `prefix` (SIGHUP reloads the calendar before the
  /// certificate, and says so first).
  func nextLine(skipping prefix: String) async throws -> String {
    while true {
      let line = try await nextLine()
      if !line.hasPrefix(prefix) { return line }
    }
  }

  private func nextLineUnchecked() throws -> String {
    while true {
      if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
        let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
        buffered = Data(buffered[buffered.index(after: newline)...])
        return line
      }
      let chunk = output.fileHandleForReading.availableData
      if chunk.isEmpty { throw ServerProcessError(message: "pemis-server closed its output") }
      buffered.append(chunk)
    }
  }

  func signal(_ number: Int32) { Foundation.kill(process.processIdentifier, number) }

  func stop() async -> Int32 {
    signal(SIGTERM)
    return (try? await offCooperativePool {
      self.process.waitUntilExit()
      return self.process.terminationStatus
    }) ?? -1
  }

  func kill() { if process.isRunning { signal(SIGKILL) } }
}
