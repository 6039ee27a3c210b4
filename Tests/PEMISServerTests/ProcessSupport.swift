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

/// Runs a program to completion (with a time limit) and captures its output.
func run(_ executable: URL, _ arguments: [String], timeout: Double = 120) throws -> ProcessOutput {
  let process = Process()
  process.executableURL = executable
  process.arguments = arguments
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
  let dataDirectory: String
  private let stdout = Pipe()
  private let stderr = Pipe()

  init(extraArguments: [String] = []) throws {
    dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-proc-\(UUID())/data").path
    process.executableURL = productsDirectory.appendingPathComponent("pemis-server")
    process.arguments = ["serve", "--port", "0", "--data-dir", dataDirectory, "--log-level", "warning"] + extraArguments
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    // The first line says where it listens.
    var line = Data()
    let handle = stdout.fileHandleForReading
    while !line.contains(UInt8(ascii: "\n")) {
      let chunk = handle.availableData
      if chunk.isEmpty { break }
      line.append(chunk)
    }
    let text = String(decoding: line, as: UTF8.self)
    guard let range = text.range(of: #"listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression),
      let port = Int(text[range].split(separator: ":").last!)
    else {
      process.terminate()
      throw ServerProcessError(message: "pemis-server did not report its address: \(text)")
    }
    self.port = port
  }

  var address: String { "127.0.0.1:\(port)" }

  /// Sends SIGTERM and waits for the process; returns its exit status and what it logged.
  func stop(signal: Int32 = SIGTERM) -> (status: Int32, log: String) {
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
