internal import GRPCCore
internal import Synchronization

/// Where a CANCEL frame or an expired deadline reaches a server handler. The handle only exists
/// once the handler's task runs, so a cancellation that arrives first is remembered.
final class ServerStreamCancellation: Sendable {
  private let state = Mutex<(handle: ServerContext.RPCCancellationHandle?, cancelled: Bool)>((nil, false))

  func attach(_ handle: ServerContext.RPCCancellationHandle) {
    let cancelled = state.withLock { state in
      state.handle = handle
      return state.cancelled
    }
    if cancelled { handle.cancel() }
  }

  func cancel() {
    let handle = state.withLock { state in
      state.cancelled = true
      return state.handle
    }
    handle?.cancel()
  }
}

/// A call a client opened, handed to the server transport to run.
struct ServerStream: Sendable {
  let connection: WireConnection
  let id: UInt32
  let descriptor: MethodDescriptor
  let deadline: ContinuousClock.Instant?
  let inbound: AsyncThrowingStream<RPCRequestPart<[UInt8]>, any Error>
  let cancellation: ServerStreamCancellation

  var rpcStream: RPCStream<RPCAsyncSequence<RPCRequestPart<[UInt8]>, any Error>, RPCWriter<RPCResponsePart<[UInt8]>>.Closable> {
    let connection = self.connection
    let id = self.id
    return RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence(
        wrapping: FlowControlledInbound(base: inbound) { messageSize in
          if let messageSize { connection.messageConsumed(id, size: messageSize) }
        }),
      outbound: RPCWriter.Closable(wrapping: ServerOutbound(connection: connection, id: id)))
  }
}

/// An inbound sequence that reports each message the application takes (with its size), so the
/// connection can return flow-control credit to the peer and account for buffered bytes.
struct FlowControlledInbound<Element: Sendable>: AsyncSequence, Sendable {
  typealias Failure = any Error
  let base: AsyncThrowingStream<Element, any Error>
  let onElement: @Sendable (_ messageSize: Int?) -> Void

  func makeAsyncIterator() -> Iterator {
    Iterator(base: base.makeAsyncIterator(), onElement: onElement)
  }

  struct Iterator: AsyncIteratorProtocol {
    var base: AsyncThrowingStream<Element, any Error>.AsyncIterator
    let onElement: @Sendable (_ messageSize: Int?) -> Void

    mutating func next() async throws -> Element? {
      let element = try await base.next()
      if let element { onElement(Self.messageSize(element)) }
      return element
    }

    private static func messageSize(_ element: Element) -> Int? {
      switch element {
      case let part as RPCRequestPart<[UInt8]>:
        if case .message(let bytes) = part { return bytes.count }
      case let part as RPCResponsePart<[UInt8]>:
        if case .message(let bytes) = part { return bytes.count }
      default: break
      }
      return nil
    }
  }
}

/// The server handler's side of a call: response metadata, messages and the final status.
struct ServerOutbound: ClosableRPCWriterProtocol {
  typealias Element = RPCResponsePart<[UInt8]>
  let connection: WireConnection
  let id: UInt32

  func write(_ element: Element) async throws {
    switch element {
    case .metadata(let metadata):
      try connection.sendResponseStart(id, metadata)
    case .message(let bytes):
      try await connection.sendMessage(id, bytes)
    case .status(let status, let trailers):
      connection.endServerStream(id, status: status, trailers: trailers, cancelHandler: false)
    }
  }

  func write(contentsOf elements: some Sequence<Element>) async throws {
    for element in elements { try await write(element) }
  }

  func finish() async {
    // GRPCCore writes a status before finishing; a stream still open here lost its handler.
    connection.endServerStream(
      id, status: Status(code: .internalError, message: "handler ended without a status"),
      trailers: [:], cancelHandler: false)
  }

  func finish(throwing error: any Error) async {
    let status: Status
    if let error = error as? RPCError {
      status = Status(code: Status.Code(error.code), message: error.message)
    } else {
      status = Status(code: .unknown, message: "handler failed")
    }
    connection.endServerStream(id, status: status, trailers: [:], cancelHandler: false)
  }
}

/// The client's side of one call, from the moment it holds a slot on a connection.
final class ClientCall: Sendable {
  let connection: WireConnection
  let descriptor: MethodDescriptor
  let inbound: AsyncThrowingStream<RPCResponsePart<[UInt8]>, any Error>
  private let continuation: AsyncThrowingStream<RPCResponsePart<[UInt8]>, any Error>.Continuation
  private let state = Mutex<(id: UInt32?, done: Bool)>((nil, false))

  init(connection: WireConnection, descriptor: MethodDescriptor) {
    self.connection = connection
    self.descriptor = descriptor
    (self.inbound, self.continuation) = AsyncThrowingStream.makeStream()
  }

  var streamID: UInt32? { state.withLock { $0.id } }

  var rpcStream: RPCStream<RPCAsyncSequence<RPCResponsePart<[UInt8]>, any Error>, RPCWriter<RPCRequestPart<[UInt8]>>.Closable> {
    RPCStream(
      descriptor: descriptor,
      inbound: RPCAsyncSequence(
        wrapping: FlowControlledInbound(base: inbound) { [self] messageSize in
          if let messageSize, let id = self.streamID { self.connection.messageConsumed(id, size: messageSize) }
        }),
      outbound: RPCWriter.Closable(wrapping: ClientOutbound(call: self)))
  }

  /// Sends CALL_START with the call's metadata; the deadline travels as a field of its own.
  func start(metadata: Metadata) throws {
    var metadata = metadata
    let timeout = metadata[stringValues: GRPCTimeout.key].first(where: { _ in true })
      .flatMap(GRPCTimeout.microseconds(from:)) ?? 0
    metadata.removeAllValues(forKey: GRPCTimeout.key)
    let alreadyStarted = state.withLock { $0.id != nil }
    guard !alreadyStarted else { throw RPCError(code: .internalError, message: "call metadata sent twice") }
    _ = try connection.startClientStream(
      method: "/\(descriptor.fullyQualifiedMethod)", metadata: metadata, timeoutMicros: timeout,
      inbound: continuation
    ) { id in
      // Under the connection's lock: either the call is still wanted and records its id before
      // CALL_START is queued, or it was finished meanwhile and nothing is sent.
      self.state.withLock { state in
        guard !state.done else { return false }
        state.id = id
        return true
      }
    }
  }

  func sendMessage(_ bytes: [UInt8]) async throws {
    guard let id = streamID else {
      throw RPCError(code: .internalError, message: "message sent before call metadata")
    }
    try await connection.sendMessage(id, bytes)
  }

  func closeSend() {
    if let id = streamID { connection.sendCloseSend(id) }
  }

  /// Ends the call from the client side. Safe to call more than once; the first call gives back
  /// the connection slot and, if the server had not ended the call yet, sends CANCEL.
  func finish(reason: String, error: any Error) {
    let (id, first) = state.withLock { state -> (UInt32?, Bool) in
      defer { state.done = true }
      return (state.id, !state.done)
    }
    guard first else { return }
    if let id {
      connection.cancelClientStream(id, error: error, reason: reason)
    } else {
      continuation.finish(throwing: error)
    }
    connection.releaseSlots(1)
  }
}

struct ClientOutbound: ClosableRPCWriterProtocol {
  typealias Element = RPCRequestPart<[UInt8]>
  let call: ClientCall

  func write(_ element: Element) async throws {
    switch element {
    case .metadata(let metadata): try call.start(metadata: metadata)
    case .message(let bytes): try await call.sendMessage(bytes)
    }
  }

  func write(contentsOf elements: some Sequence<Element>) async throws {
    for element in elements { try await write(element) }
  }

  func finish() async { call.closeSend() }

  func finish(throwing error: any Error) async {
    call.finish(reason: "client request stream failed", error: error)
  }
}
