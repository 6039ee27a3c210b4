import Foundation
import Testing

/// The real executables, as a user runs them.
@Suite("pemis and pemis-server from the command line", .serialized)
struct CommandLineTests {
  let pemis = productsDirectory.appendingPathComponent("pemis")

  @Test("pemis health talks to a running pemis-server and exits 0")
  func health() async throws {
    let server = try await ServerProcess.start()
    let output = try await run(pemis, ["health", "--server", server.address, "--plaintext"])
    #expect(output.status == 0, "stderr: \(output.stderr)")
    #expect(output.stdout.contains("\(server.address)  SERVING  version 0.1.0  protocol 1"))
    let json = try await run(pemis, ["health", "--server", server.address, "--json", "--plaintext"])
    let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    #expect(object?["status"] as? String == "SERVING")
    #expect(await server.stop().status == 0)
  }

  @Test("pemis health against nothing says why and exits 1")
  func healthUnreachable() async throws {
    let output = try await run(pemis, ["health", "--server", "127.0.0.1:1", "--timeout", "5", "--plaintext"])
    #expect(output.status == 1)
    #expect(output.stderr.contains("UNAVAILABLE"))
    #expect(output.stderr.contains("127.0.0.1:1"))
  }

  @Test("a malformed --server is refused before connecting")
  func badAddress() async throws {
    let output = try await run(pemis, ["health", "--server", "localhost:http"])
    #expect(output.status != 0)
    #expect(output.stderr.contains("server address 'localhost:http' has port 'http'"))
  }

  @Test("pemis echo carries text and reports a missed deadline")
  func echo() async throws {
    let server = try await ServerProcess.start(extraArguments: ["--diagnostics", "true"])
    let output = try await run(pemis, ["echo", "幼儿园 kindergarten", "--server", server.address, "--expand", "--plaintext"])
    #expect(output.stdout == "幼儿园\nkindergarten\n")
    let late = try await run(pemis, ["echo", "x", "--delay-ms", "3000", "--timeout", "0.3", "--server", server.address, "--plaintext"])
    #expect(late.status == 1)
    #expect(late.stderr.contains("DEADLINE_EXCEEDED"))
    #expect(await server.stop().status == 0)
  }

  @Test("SIGTERM lets a call in flight finish, then the server exits 0")
  func gracefulShutdownOnSIGTERM() async throws {
    let server = try await ServerProcess.start(extraArguments: ["--diagnostics", "true"])
    let server_ = server
    async let echoed = try? run(pemis, ["echo", "finished", "--delay-ms", "8000", "--server", server_.address, "--plaintext"])
    // Time for the client process to start and its call to reach the server, even on a busy machine.
    try await Task.sleep(for: .seconds(3))
    let (status, log) = await server.stop(signal: SIGTERM)
    let result = LockedBox<ProcessOutput?>(await echoed)
    #expect(status == 0, "log: \(log)")
    #expect(result.value?.stdout == "finished\n", "stderr: \(result.value?.stderr ?? "")")
  }

  @Test("a bad setting stops pemis-server at start with the setting named")
  func badSetting() async throws {
    let output = try await run(
      productsDirectory.appendingPathComponent("pemis-server"), ["serve", "--port", "0", "--max-frame-size", "10"])
    #expect(output.status != 0)
    #expect(output.stderr.contains("maxFrameSize must be between 1024 and 67108864 bytes, got 10"))
  }
}

final class LockedBox<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var _value: Value
  init(_ value: Value) { _value = value }
  var value: Value {
    get { lock.withLock { _value } }
    set { lock.withLock { _value = newValue } }
  }
}
