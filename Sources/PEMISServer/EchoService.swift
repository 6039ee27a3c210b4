internal import GRPCCore
internal import PEMISProto
internal import PEMISWire
internal import SwiftProtobuf

/// `pemis.v1.Echo`: the diagnostic service with all four call shapes, for transport tests and
/// benchmarks. It keeps nothing and reads no personal data; `diagnostics: false` turns it off.
struct EchoService: Pemis_V1_Echo.SimpleServiceProtocol {
  static let maxDelayMilliseconds: UInt32 = 60_000
  static let maxRepeat: UInt32 = 10_000

  func get(request: Pemis_V1_EchoRequest, context: ServerContext) async throws -> Pemis_V1_EchoResponse {
    let remaining = try Self.validate(request, context: context)
    try await Self.delay(request, context: context)
    return Self.response(to: request, text: request.text, index: 0, remaining: remaining)
  }

  func expand(
    request: Pemis_V1_EchoRequest, response: RPCWriter<Pemis_V1_EchoResponse>, context: ServerContext
  ) async throws {
    let remaining = try Self.validate(request, context: context)
    guard request.repeat <= Self.maxRepeat else {
      throw RPCError(code: .invalidArgument, message: "repeat: must be at most \(Self.maxRepeat), got \(request.repeat)")
    }
    let parts: [String] =
      request.repeat > 0
      ? Array(repeating: request.text, count: Int(request.repeat))
      : request.text.split(separator: " ").map(String.init)
    for (index, part) in parts.enumerated() {
      try await Self.delay(request, context: context)
      try await response.write(Self.response(to: request, text: part, index: index, remaining: remaining))
    }
  }

  func collect(
    request: RPCAsyncSequence<Pemis_V1_EchoRequest, any Error>, context: ServerContext
  ) async throws -> Pemis_V1_EchoResponse {
    var texts: [String] = []
    var count = 0
    for try await message in request {
      _ = try Self.validate(message, context: context)
      try await Self.delay(message, context: context)
      texts.append(message.text)
      count += 1
    }
    return .with {
      $0.text = texts.joined(separator: " ")
      $0.index = UInt32(count)
    }
  }

  func update(
    request: RPCAsyncSequence<Pemis_V1_EchoRequest, any Error>, response: RPCWriter<Pemis_V1_EchoResponse>,
    context: ServerContext
  ) async throws {
    var index = 0
    for try await message in request {
      let remaining = try Self.validate(message, context: context)
      try await Self.delay(message, context: context)
      try await response.write(Self.response(to: message, text: message.text, index: index, remaining: remaining))
      index += 1
    }
  }

  /// Checks the request; returns the milliseconds left before the caller's deadline, if any.
  private static func validate(_ request: Pemis_V1_EchoRequest, context: ServerContext) throws -> Int64? {
    guard request.delayMs <= maxDelayMilliseconds else {
      throw RPCError(
        code: .invalidArgument, message: "delay_ms: must be at most \(maxDelayMilliseconds), got \(request.delayMs)")
    }
    return context.pemisWire?.deadline.map { deadline in
      let left = ContinuousClock.now.duration(to: deadline)
      return left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
    }
  }

  /// Waits `delay_ms`, ending early with CANCELLED if the call is cancelled (by the client or by
  /// its deadline).
  private static func delay(_ request: Pemis_V1_EchoRequest, context: ServerContext) async throws {
    guard request.delayMs > 0 else { return }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await Task.sleep(for: .milliseconds(Int(request.delayMs))) }
      group.addTask {
        try await context.cancellation.cancelled
        throw RPCError(code: .cancelled, message: "call cancelled while waiting")
      }
      try await group.next()
      group.cancelAll()
    }
  }

  private static func response(
    to request: Pemis_V1_EchoRequest, text: String, index: Int, remaining: Int64?
  ) -> Pemis_V1_EchoResponse {
    .with {
      $0.text = text
      $0.payload = request.payload
      $0.index = UInt32(index)
      if let remaining { $0.remainingDeadlineMs = remaining }
    }
  }
}
