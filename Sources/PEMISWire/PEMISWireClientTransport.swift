public import GRPCCore
public import Logging
public import NIOCore
public import NIOPosix
internal import Synchronization
internal import Foundation

/// The client side of PEMIS wire (docs/PROTOCOL.md) as a GRPCCore `ClientTransport`.
///
/// One TCP connection carries all calls, multiplexed. The connection is made on the first call
/// and made again on a later call if it was lost or the server sent GOAWAY. Calls beyond the
/// server's concurrent-call limit wait for a free slot, in order.
public final class PEMISWireClientTransport: ClientTransport, Sendable {
  public typealias Bytes = [UInt8]

  /// Client settings. Values are those of ``defaults``.
  public struct Config: Sendable {
    /// Frame size and stream window this client announces in HELLO.
    public var limits: WireLimits
    /// How long connecting (TCP and HELLO exchange) may take. Default 10 seconds.
    public var connectTimeout: Duration
    /// When set, the connection speaks TLS (verifying the server) before HELLO. Default nil:
    /// plaintext.
    public var tls: WireClientTLS? = nil

    public init(limits: WireLimits, connectTimeout: Duration) {
      self.limits = limits
      self.connectTimeout = connectTimeout
    }

    public static var defaults: Self { Self(limits: .defaults, connectTimeout: .seconds(10)) }
  }

  public let host: String
  public let port: Int
  private let config: Config
  private let group: any EventLoopGroup
  private let logger: Logger
  private let state = Mutex(State.idle)
  private let shutdown: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

  private enum State {
    case idle
    case connecting(EventLoopFuture<WireConnection>)
    case ready(WireConnection)
    case shutDown
  }

  public init(
    host: String, port: Int, config: Config = .defaults,
    eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    logger: Logger = Logger(label: "pemis.wire", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.host = host
    self.port = port
    self.config = config
    self.group = eventLoopGroup
    self.logger = logger
    self.shutdown = AsyncStream.makeStream()
  }

  public var retryThrottle: RetryThrottle? { nil }

  public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { nil }

  /// Runs until ``beginGracefulShutdown()``; then lets the calls in flight finish and closes.
  public func connect() async throws {
    for await _ in shutdown.stream {}
    let connection = state.withLock { state -> WireConnection? in
      defer { state = .shutDown }
      if case .ready(let connection) = state { return connection }
      return nil
    }
    guard let connection else { return }
    try? await withTaskCancellationHandler {
      connection.beginDraining(reason: "client is shutting down")
      try await connection.channel.closeFuture.get()
    } onCancel: {
      // Cancelled: do not wait for calls in flight.
      connection.cancelAllStreams(reason: "client transport cancelled")
    }
  }

  public func beginGracefulShutdown() {
    shutdown.continuation.finish()
  }

  public func withStream<T: Sendable>(
    descriptor: MethodDescriptor,
    options: CallOptions,
    _ closure: (_ stream: RPCStream<Inbound, Outbound>, _ context: ClientContext) async throws -> T
  ) async throws -> T {
    var attempts = 0
    var connection = try await usableConnection()
    while true {
      do {
        try await connection.acquireSlot()
        break
      } catch is ConnectionDraining where attempts < 3 {
        // The server sent GOAWAY before this call was sent: it goes to a new connection.
        attempts += 1
        connection = try await usableConnection()
      } catch is ConnectionDraining {
        throw RPCError(code: .unavailable, message: "the server keeps going away; the call was not sent")
      }
    }
    let call = ClientCall(connection: connection, descriptor: descriptor)
    let context = ClientContext(
      descriptor: descriptor, remotePeer: connection.remotePeer, localPeer: connection.localPeer)
    let result: Result<T, any Error>
    do {
      result = .success(
        try await withTaskCancellationHandler {
          try await closure(call.rpcStream, context)
        } onCancel: {
          call.finish(reason: "client cancelled", error: RPCError(code: .cancelled, message: "the call was cancelled"))
        })
    } catch {
      result = .failure(error)
    }
    call.finish(reason: "client stopped reading", error: RPCError(code: .cancelled, message: "the call has ended"))
    return try result.get()
  }

  /// The current connection if it can take new calls; otherwise makes one. Concurrent callers
  /// share one attempt.
  private func usableConnection() async throws -> WireConnection {
    enum Next { case use(WireConnection), wait(EventLoopFuture<WireConnection>), make(EventLoopPromise<WireConnection>) }
    let next = try state.withLock { state -> Next in
      switch state {
      case .ready(let connection) where connection.acceptsNewStreams:
        return .use(connection)
      case .connecting(let future):
        return .wait(future)
      case .idle, .ready:
        let promise = group.any().makePromise(of: WireConnection.self)
        state = .connecting(promise.futureResult)
        return .make(promise)
      case .shutDown:
        throw RPCError(code: .failedPrecondition, message: "the client transport has been shut down")
      }
    }
    switch next {
    case .use(let connection):
      return connection
    case .wait(let future):
      return try await future.get()
    case .make(let promise):
      let future = makeConnection()
      future.whenComplete { result in
        let orphan = self.state.withLock { state -> WireConnection? in
          guard case .connecting = state else {
            // Shut down while connecting: nobody will use this connection.
            if case .success(let connection) = result { return connection }
            return nil
          }
          switch result {
          case .success(let connection): state = .ready(connection)
          case .failure: state = .idle
          }
          return nil
        }
        orphan?.beginDraining(reason: "client is shutting down")
      }
      future.cascade(to: promise)
      return try await future.get()
    }
  }

  /// TCP connect, then HELLO both ways, within the connect timeout.
  private func makeConnection() -> EventLoopFuture<WireConnection> {
    let limits = config.limits
    let logger = self.logger
    let timeout = TimeAmount.nanoseconds(Int64(config.connectTimeout.wholeMicroseconds * 1_000))
    let host = self.host
    let port = self.port
    let tls = config.tls
    let tlsFailure = TLSFailure()
    return ClientBootstrap(group: group)
      .channelOption(.tcpOption(.tcp_nodelay), value: 1)
      .connectTimeout(timeout)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls { try channel.pipeline.syncOperations.addClientTLS(tls, failure: tlsFailure) }
          let connection = WireConnection(channel: channel, role: .client, limits: limits, logger: logger)
          try channel.pipeline.syncOperations.addWireHandlers(connection: connection, handshakeTimeout: timeout)
          try channel.pipeline.syncOperations.addHandler(ConnectionCarrier(connection))
        }
      }
      .connect(host: host, port: port)
      .flatMap { channel in
        channel.pipeline.handler(type: ConnectionCarrier.self).map(\.connection)
      }
      .flatMap { connection in
        connection.handshake.futureResult.map { _ in connection }
      }
      .flatMapErrorThrowing { error in
        if let reason = tlsFailure.description {
          throw RPCError(
            code: .unavailable,
            message: "TLS handshake with \(host):\(port) failed: \(reason). The server's certificate must be signed by a "
              + "trusted CA (--ca-file or the system store), be valid now, and name the host connected to", cause: error)
        }
        if error is RPCError { throw error }
        throw RPCError(code: .unavailable, message: "cannot connect to \(host):\(port): \(Self.describe(error))", cause: error)
      }
  }
}

extension PEMISWireClientTransport {
  /// The reason a connection attempt failed, in words ("Connection refused").
  static func describe(_ error: any Error) -> String {
    if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
      if let io = first.error as? IOError { return String(cString: strerror(io.errnoCode)) }
      return "\(first.error)"
    }
    if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
    if error is ChannelError { return "\(error)" }
    return "\(error)"
  }
}

/// Lets the bootstrap hand the connection it built back to the caller.
private final class ConnectionCarrier: ChannelInboundHandler, Sendable {
  typealias InboundIn = Never
  let connection: WireConnection
  init(_ connection: WireConnection) { self.connection = connection }
}
