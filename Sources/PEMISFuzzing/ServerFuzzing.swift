internal import Foundation
internal import GRPCCore
internal import Logging
internal import PEMISClient
internal import PEMISProto
internal import PEMISServer
internal import PEMISStore
internal import PEMISWireFuzzing
internal import SwiftProtobuf

#if canImport(Glibc)
  internal import Glibc
#endif

/// The whole server under fuzzing, as a stranger on the network meets it: each input is the bytes
/// one TCP connection sends — frames, handshake, calls to any method with any metadata and any
/// request bytes — to a real `PEMISServer` in this process (wire transport, interceptor, request
/// decoding, services, store). A crash, a trap or an assertion anywhere is the finding; so is a
/// connection the server keeps open after the client has closed its side.
///
/// An input may hold ``tokenPlaceholder``; it is replaced by a live district administrator's
/// session token, so stored inputs reach past authentication in every later run.
public final class ServerFuzzing: Sendable {
  /// 43 bytes, as long as a session token, so replacing it keeps every frame length right.
  public static let tokenPlaceholder = WireFuzzFrames.tokenPlaceholder
  /// How long the server may keep a connection open after the client closed its side.
  static let closeLimitSeconds = 10

  public let port: Int
  public let token: String
  private let placeholder = Array(tokenPlaceholder.utf8)
  private let tokenBytes: [UInt8]
  private let server: PEMISServer

  /// The server of this process, started on first use (libFuzzer calls in from C, synchronously).
  public static let shared: ServerFuzzing = {
    let result = BlockingResult<ServerFuzzing>()
    Task.detached {
      do { result.set(.success(try await ServerFuzzing.start())) } catch { result.set(.failure(error)) }
    }
    do { return try result.wait() } catch { fatalError("the fuzzing server did not start: \(error)") }
  }()

  private init(server: PEMISServer, port: Int, token: String) {
    self.server = server
    self.port = port
    self.token = token
    self.tokenBytes = Array(token.utf8)
    precondition(tokenBytes.count == placeholder.count, "session tokens are no longer 43 bytes")
  }

  /// A fresh data directory, diagnostics on (Echo), cheap password hashes, and a district
  /// administrator who has chosen a password and holds a session.
  public static func start() async throws -> ServerFuzzing {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-fuzz-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    var configuration = ServerConfiguration.defaults
    configuration.port = 0
    configuration.dataDirectory = directory
    configuration.diagnostics = true
    configuration.passwordHashCost = 10
    configuration.durability = .normal
    configuration.calendarDirectory = ProcessInfo.processInfo.environment["PEMIS_CALENDAR_DIR"] ?? Self.sourceRoot + "/Config/calendar"
    var logger = Logger(label: "pemis.fuzz")
    logger.logLevel = ProcessInfo.processInfo.environment["PEMIS_FUZZ_LOG"] == nil ? .critical : .debug
    let server = try PEMISServer(configuration: configuration, logger: logger)
    let oneTime = try await server.tenancy.createFirstAdministrator(username: "fuzz.admin", displayName: "Fuzz")
    Task.detached { try? await server.run() }
    var address: ServerAddress?
    for _ in 0..<500 where address == nil {
      if let hostPort = try? await server.listeningHostAndPort, let parsed = try? ServerAddress(parsing: hostPort), parsed.port != 0 {
        address = parsed
      } else {
        try await Task.sleep(for: .milliseconds(10))
      }
    }
    guard let address else { throw FuzzSetupError(message: "the server did not start listening") }
    let password = "Fuzz-password-2026"
    let first = try await login(address, "fuzz.admin", oneTime)
    try await withPEMISClient(address, token: first) { client in
      _ = try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
        $0.currentPassword = oneTime
        $0.newPassword = password
      })
    }
    let token = try await login(address, "fuzz.admin", password)
    return ServerFuzzing(server: server, port: address.port, token: token)
  }

  static func login(_ address: ServerAddress, _ username: String, _ password: String) async throws -> String {
    try await withPEMISClient(address) { client in
      try await Pemis_V1_Session.Client(wrapping: client).login(.with {
        $0.username = username
        $0.password = password
      }).token
    }
  }

  /// The repository, found from this file (fuzzers run where they were built).
  static var sourceRoot: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
  }

  /// Sends `input` on a new connection and reads until the server closes it. Traps when the
  /// server keeps the connection past ``closeLimitSeconds`` after the client closed its side.
  public func run(_ input: UnsafeRawBufferPointer) {
    _ = exchange(input)
  }

  /// ``run(_:)``, returning what the server sent.
  ///
  /// The input is cut after its last whole frame and followed by the client's GOAWAY, so a server
  /// that keeps docs/PROTOCOL.md closes the connection once its calls end; a call the input left
  /// waiting (no CLOSE_SEND) gets `quietMilliseconds` of silence, then the client closes its side
  /// of the TCP connection and the server must close within the limit. (A half-frame at the end
  /// is the frame fuzzer's case and the decoder's `truncatedFrame`.)
  public func exchange(_ input: UnsafeRawBufferPointer, quietMilliseconds: Int = 200) -> [UInt8] {
    var bytes = Array(input)
    substituteToken(&bytes)
    bytes.removeSubrange(Self.wholeFrames(bytes)...)
    bytes += [0, 0, 0, 0, 0x09, 0, 0, 0, 0, 0]  // GOAWAY, stream 0, empty: last stream 0, NO_ERROR
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0, "socket: \(errno)")
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    precondition(connected == 0, "connect to the fuzzing server: errno \(errno)")
    setReceiveTimeout(fd, milliseconds: quietMilliseconds)
    var sent = 0
    while sent < bytes.count {
      let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
      if n <= 0 { break }  // the server closed on us: allowed, it may refuse anything
      sent += n
    }
    var received: [UInt8] = []
    var scratch = [UInt8](repeating: 0, count: 64 * 1024)
    var halfClosed = false
    while true {
      let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n > 0 {
        // Keep the start only: enough to read a status, bounded whatever the server sends.
        if received.count < 1 << 20 { received += scratch[0..<n] }
        continue
      }
      if n == 0 || errno == ECONNRESET { return received }
      if errno == EINTR { continue }
      guard errno == EAGAIN || errno == EWOULDBLOCK else { return received }
      precondition(!halfClosed, "the server kept a connection open \(Self.closeLimitSeconds) s after the client closed its side")
      shutdown(fd, Int32(SHUT_WR))
      halfClosed = true
      setReceiveTimeout(fd, milliseconds: Self.closeLimitSeconds * 1000)
    }
  }

  /// The length of the prefix of `bytes` made of whole frames (10-byte header, then the payload).
  static func wholeFrames(_ bytes: [UInt8]) -> Int {
    var end = 0
    while end + 10 <= bytes.count {
      let length = bytes[end..<(end + 4)].reduce(0) { $0 << 8 | Int($1) }
      guard end + 10 + length <= bytes.count else { break }
      end += 10 + length
    }
    return end
  }

  private func setReceiveTimeout(_ fd: Int32, milliseconds: Int) {
    var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  private func substituteToken(_ bytes: inout [UInt8]) {
    guard bytes.count >= placeholder.count else { return }
    var i = 0
    while i <= bytes.count - placeholder.count {
      if bytes[i] == placeholder[0], bytes[i..<(i + placeholder.count)].elementsEqual(placeholder) {
        bytes.replaceSubrange(i..<(i + placeholder.count), with: tokenBytes)
        i += placeholder.count
      } else {
        i += 1
      }
    }
  }
}

struct FuzzSetupError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// Hands an async result to a synchronous caller (libFuzzer's entry point is a C function).
final class BlockingResult<Value: Sendable>: @unchecked Sendable {
  private let condition = NSCondition()
  private var result: Result<Value, any Error>?

  func set(_ value: Result<Value, any Error>) {
    condition.lock()
    result = value
    condition.signal()
    condition.unlock()
  }

  func wait() throws -> Value {
    condition.lock()
    defer { condition.unlock() }
    while result == nil { condition.wait() }
    return try result!.get()
  }
}
