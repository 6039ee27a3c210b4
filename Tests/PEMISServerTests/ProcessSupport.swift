import Foundation
import Testing

/// The directory holding the built products (`pemis-server`, `pemis`), next to the test bundle.
let productsDirectory: URL = {
  var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
  while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("pemis-server").path) {
    url.deleteLastPathComponent()
  }
  return url
}()

/// The repository root, for tools and files the tests use.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

struct ProcessOutput {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs blocking work (waiting for a child process, reading its pipes) on a thread of its own.
/// A test that blocks a cooperative thread instead holds one of the few every other test's async
/// work needs (two on two cores): a few such tests at once stalled the wire's timing tests for
/// seconds (a call's CLOSE_SEND handled after its 2 s limit).
func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { continuation in
    Thread { continuation.resume(with: Result { try body() }) }.start()
  }
}

/// Runs a program to completion (with a time limit) and captures its output, off the
/// cooperative pool.
/// - Parameter environment: variables added to (or replacing) this process's environment.
func run(
  _ executable: URL, _ arguments: [String], timeout: Double = 120, environment: [String: String] = [:]
) async throws -> ProcessOutput {
  try await offCooperativePool { try runBlocking(executable, arguments, timeout: timeout, environment: environment) }
}

/// ``run(_:_:timeout:environment:)``, blocking the calling thread.
func runBlocking(
  _ executable: URL, _ arguments: [String], timeout: Double = 120, environment: [String: String] = [:]
) throws -> ProcessOutput {
  let process = Process()
  process.executableURL = executable
  process.arguments = arguments
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
  }
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let deadline = Date().addingTimeInterval(timeout)
  // Read while waiting so a chatty program cannot fill the pipe and stall.
  let stdoutBox = LockedBox(Data())
  let stderrBox = LockedBox(Data())
  let group = DispatchGroup()
  group.enter()
  DispatchQueue.global().async { stdoutBox.value = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
  group.enter()
  DispatchQueue.global().async { stderrBox.value = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
  while process.isRunning && Date() < deadline { usleep(20_000) }
  if process.isRunning { process.terminate() }
  process.waitUntilExit()
  group.wait()
  return ProcessOutput(
    status: process.terminationStatus, stdout: String(decoding: stdoutBox.value, as: UTF8.self),
    stderr: String(decoding: stderrBox.value, as: UTF8.self))
}

/// A `pemis-server` process on an ephemeral port, stopped with SIGTERM at the end.
final class ServerProcess: @unchecked Sendable {
  let process = Process()
  let port: Int
  /// The standard gRPC (HTTP/2) port, when started with --http2-port.
  let http2Port: Int?
  let dataDirectory: String
  private let stdout = Pipe()
  private let stderr = Pipe()

  /// - Parameter dataDirectory: an existing data directory (e.g. seeded), or nil for a new one.
  init(dataDirectory: String? = nil, extraArguments: [String] = []) throws {
    self.dataDirectory =
      dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("pemis-proc-\(UUID())/data").path
    process.executableURL = productsDirectory.appendingPathComponent("pemis-server")
    process.arguments = ["serve", "--port", "0", "--data-dir", self.dataDirectory, "--log-level", "warning"] + extraArguments
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    // The first line says where it listens; with --http2-port, a second line says where the
    // HTTP/2 listener is.
    let lines = extraArguments.contains("--http2-port") ? 2 : 1
    var output = Data()
    let handle = stdout.fileHandleForReading
    while output.filter({ $0 == UInt8(ascii: "\n") }).count < lines {
      let chunk = handle.availableData
      if chunk.isEmpty { break }
      output.append(chunk)
    }
    let text = String(decoding: output, as: UTF8.self)
    func reported(_ pattern: String) -> Int? {
      text.range(of: pattern, options: .regularExpression).flatMap { range in
        text[range].split(separator: " ")[2].split(separator: ":").last.flatMap { Int($0) }
      }
    }
    guard let port = reported(#"listening on 127\.0\.0\.1:(\d+) \(PEMIS wire"#) else {
      process.terminate()
      throw ServerProcessError(message: "pemis-server did not report its address: \(text)")
    }
    self.port = port
    self.http2Port = reported(#"listening on 127\.0\.0\.1:(\d+) \(gRPC over HTTP/2"#)
    if lines == 2 && http2Port == nil {
      process.terminate()
      throw ServerProcessError(message: "pemis-server did not report its HTTP/2 address: \(text)")
    }
  }

  var address: String { "127.0.0.1:\(port)" }

  /// Starts the server and waits until it reports its address, off the cooperative pool.
  static func start(dataDirectory: String? = nil, extraArguments: [String] = []) async throws -> ServerProcess {
    try await offCooperativePool { try ServerProcess(dataDirectory: dataDirectory, extraArguments: extraArguments) }
  }

  /// Sends SIGTERM and waits for the process, off the cooperative pool; returns its exit status
  /// and what it logged.
  func stop(signal: Int32 = SIGTERM) async -> (status: Int32, log: String) {
    (try? await offCooperativePool { self.stopBlocking(signal: signal) }) ?? (-1, "")
  }

  /// ``stop(signal:)``, blocking the calling thread.
  func stopBlocking(signal: Int32 = SIGTERM) -> (status: Int32, log: String) {
    kill(process.processIdentifier, signal)
    let deadline = Date().addingTimeInterval(30)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return (process.terminationStatus, log)
  }

  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }
}

struct ServerProcessError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}
