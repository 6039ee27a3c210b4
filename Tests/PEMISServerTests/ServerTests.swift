import Foundation
import GRPCCore
import Logging
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer

/// Runs the real `PEMISServer` service on an ephemeral port with a fresh data directory.
func withRunningServer<R: Sendable>(
  _ configure: (inout ServerConfiguration) -> Void = { _ in },
  _ body: (ServerAddress, ServerConfiguration) async throws -> R
) async throws -> R {
  var configuration = ServerConfiguration.defaults
  configuration.port = 0
  configuration.dataDirectory = FileManager.default.temporaryDirectory
    .appendingPathComponent("pemis-test-\(UUID())/data").path
  // Many servers share the test process: its resident size is not one server's.
  configuration.memoryLimitBytes = 0
  configure(&configuration)
  configuration.passwordHashCost = 10
  configuration.calendarDirectory = repositoryRoot.appendingPathComponent("Config/calendar").path
  let server = try PEMISServer(configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
  let finalConfiguration = configuration
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    let hostAndPort = try await server.listeningHostAndPort
    let result = await Result { try await body(try ServerAddress(parsing: hostAndPort), finalConfiguration) }
    group.cancelAll()
    try? await group.waitForAll()
    return try result.get()
  }
}

extension Result where Failure == any Error {
  init(catching body: () async throws -> Success) async {
    do { self = .success(try await body()) } catch { self = .failure(error) }
  }
}

@Suite("pemis-server services")
struct ServerTests {
  @Test("Health reports SERVING, the version and the wire protocol")
  func health() async throws {
    try await withRunningServer { address, _ in
      let response = try await withPEMISClient(address) { client in
        try await Pemis_V1_Health.Client(wrapping: client).check(.init())
      }
      #expect(response.status == .serving)
      #expect(response.version == ServerStatus.version)
      #expect(response.protocolVersion == 1)
    }
  }

  @Test("Health about a service that is not served is NOT_FOUND, naming it")
  func healthUnknownService() async throws {
    try await withRunningServer { address, _ in
      let error = await #expect(throws: RPCError.self) {
        try await withPEMISClient(address) { client in
          try await Pemis_V1_Health.Client(wrapping: client).check(.with { $0.service = "pemis.v1.Nope" })
        }
      }
      #expect(error?.code == .notFound)
      #expect(error?.message.contains("pemis.v1.Nope") == true)
    }
  }

  @Test("Echo serves all four call shapes")
  func echoShapes() async throws {
    try await withRunningServer({ $0.diagnostics = true }) { address, _ in
      try await withPEMISClient(address) { client in
        let echo = Pemis_V1_Echo.Client(wrapping: client)
        let unary = try await echo.get(.with { $0.text = "一"; $0.payload = Data([1, 2, 3]) })
        #expect(unary.text == "一")
        #expect(unary.payload == Data([1, 2, 3]))
        let words = try await echo.expand(.with { $0.text = "small middle large" }) { response in
          try await response.messages.reduce(into: [String]()) { $0.append($1.text) }
        }
        #expect(words == ["small", "middle", "large"])
        let joined = try await echo.collect(
          request: StreamingClientRequest { writer in
            for word in ["a", "b", "c"] { try await writer.write(.with { $0.text = word }) }
          })
        #expect(joined.text == "a b c")
        let echoed = try await echo.update(
          request: StreamingClientRequest { writer in
            for word in ["x", "y"] { try await writer.write(.with { $0.text = word }) }
          }
        ) { response in
          try await response.messages.reduce(into: [String]()) { $0.append("\($1.index):\($1.text)") }
        }
        #expect(echoed == ["0:x", "1:y"])
      }
    }
  }

  @Test("Echo refuses a delay over the limit, naming the field and the rule")
  func echoValidation() async throws {
    try await withRunningServer({ $0.diagnostics = true }) { address, _ in
      let error = await #expect(throws: RPCError.self) {
        try await withPEMISClient(address) { client in
          try await Pemis_V1_Echo.Client(wrapping: client).get(.with { $0.delayMs = 600_000 })
        }
      }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message.hasPrefix("delay_ms:") == true)
    }
  }

  @Test("Echo reports the deadline it saw and stops waiting when the caller gives up")
  func echoDeadline() async throws {
    try await withRunningServer({ $0.diagnostics = true }) { address, _ in
      try await withPEMISClient(address) { client in
        let echo = Pemis_V1_Echo.Client(wrapping: client)
        var options = CallOptions.defaults
        options.timeout = .seconds(60)
        let response = try await echo.get(.with { $0.text = "t" }, options: options)
        #expect((30_000...60_000).contains(response.remainingDeadlineMs))
        options.timeout = .milliseconds(100)
        let error = await #expect(throws: RPCError.self) {
          try await echo.get(.with { $0.delayMs = 5_000 }, options: options)
        }
        #expect(error?.code == .deadlineExceeded)
      }
    }
  }

  @Test("by default (diagnostics off) Echo is not served")
  func diagnosticsOff() async throws {
    #expect(ServerConfiguration.defaults.diagnostics == false)
    try await withRunningServer { address, _ in
      let error = await #expect(throws: RPCError.self) {
        try await withPEMISClient(address) { client in
          try await Pemis_V1_Echo.Client(wrapping: client).get(.init())
        }
      }
      #expect(error?.code == .unimplemented)
    }
  }

  @Test("the data directory is created, readable by its owner only")
  func dataDirectory() async throws {
    try await withRunningServer { _, configuration in
      let attributes = try FileManager.default.attributesOfItem(atPath: configuration.dataDirectory)
      #expect(attributes[.type] as? FileAttributeType == .typeDirectory)
      #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
    }
  }

  @Test("a data directory path that is a file is refused with the setting named")
  func dataDirectoryIsAFile() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-file-\(UUID())").path
    try "x".write(toFile: path, atomically: true, encoding: .utf8)
    let error = #expect(throws: ConfigurationError.self) { try PEMISServer.prepareDataDirectory(path) }
    #expect(error?.key == "dataDirectory")
  }
}
