public import GRPCCore
public import Logging
public import NIOCore
public import NIOPosix
public import NIOSSL
internal import Synchronization

/// The server side of PEMIS wire (docs/PROTOCOL.md) as a GRPCCore `ServerTransport`.
///
/// Each accepted TCP connection runs in its own child task, which cannot throw: a client that
/// sends garbage loses its own connection and nothing else.
public final class PEMISWireServerTransport: ServerTransport, Sendable {
  public typealias Bytes = [UInt8]

  /// Listener settings. Values are those of ``defaults``.
  public struct Config: Sendable {
    /// Frame size, stream window and concurrent-call limits announced in HELLO.
    public var limits: WireLimits
    /// A connection with no open call for this long is sent GOAWAY and closed. Default 5 minutes.
    public var idleTimeout: Duration
    /// A connection that has not sent HELLO within this time is closed. Default 10 seconds.
    public var handshakeTimeout: Duration
    /// After shutdown begins, calls in flight get this long to finish before they are cancelled.
    /// Default 10 seconds.
    public var gracePeriod: Duration
    /// Connections open at once, server-wide. Default 16,384; never more than the process's
    /// descriptor limit (RLIMIT_NOFILE) less ``descriptorHeadroom``.
    public var maxConnections = 16_384
    /// Connections open at once from one IP address. Default 512 (a kindergarten behind one
    /// address has a few dozen staff; a single client uses one connection).
    public var maxConnectionsPerAddress = 512
    /// Descriptors kept free for the listener, the database and shard files. Default 1,024 (or
    /// half the descriptor limit, if that is less).
    public var descriptorHeadroom = 1_024
    /// Bytes of requests and responses all connections together may hold in memory: the
    /// messages themselves (unread, taken by a handler that has not answered, waiting to be
    /// written, unwritten). Default 64 MiB.
    public var memoryBudgetBytes = 64 * 1024 * 1024
    /// The process's resident memory (RSS) the server keeps under: from 7/8 of it, new
    /// connections are refused and connections holding memory get no new requests until it
    /// falls (``ProcessMemoryWatch``). Default nil: not watched (several servers may share a
    /// process, as in tests); `pemis-server` sets it.
    public var memoryLimitBytes: Int? = nil
    /// Where the memory watch reads the resident size; tests set it to play a process that
    /// fills and empties. Nil: the process's own (``ProcessMemory/residentBytes()``).
    var residentBytes: (@Sendable () -> Int?)? = nil
    /// Unread request bytes one connection may hold. Default 16 MiB.
    public var maxBufferedRequestBytesPerConnection = 16 * 1024 * 1024
    /// Unwritten response bytes of one connection above which its calls wait to write (one
    /// message always goes when nothing is waiting). Default 1 MiB.
    public var maxUnwrittenResponseBytesPerConnection = 1024 * 1024
    /// A call must send CLOSE_SEND within this time of CALL_START, or it ends with
    /// DEADLINE_EXCEEDED. Default 5 minutes; nil: no limit.
    public var halfCloseTimeout: Duration? = .seconds(300)
    /// A connection whose answers stay unwritten (the client does not read) this long is closed.
    /// Default 30 seconds; nil: never.
    public var unreadResponseTimeout: Duration? = .seconds(30)
    /// Log lines about bad connections (protocol errors, refused connections) per minute; the
    /// rest are counted. Default 60.
    public var badConnectionLogLinesPerMinute = 60
    /// When set, every connection speaks TLS with this context before HELLO. Default nil:
    /// plaintext. The context may pick its certificate per handshake (a reloader).
    public var tls: NIOSSLContext? = nil

    public init(limits: WireLimits, idleTimeout: Duration, handshakeTimeout: Duration, gracePeriod: Duration) {
      self.limits = limits
      self.idleTimeout = idleTimeout
      self.handshakeTimeout = handshakeTimeout
      self.gracePeriod = gracePeriod
    }

    public static var defaults: Self {
      Self(limits: .defaults, idleTimeout: .seconds(300), handshakeTimeout: .seconds(10), gracePeriod: .seconds(10))
    }
  }

  private let host: String
  private let port: Int
  private let config: Config
  private let group: any EventLoopGroup
  private let logger: Logger
  private let state = Mutex(State())

  private struct State {
    var serverChannel: (any Channel)?
    /// Shared by the connections, once listening (tests read the budget in use).
    var governance: WireGovernance?
    var connections: [ObjectIdentifier: WireConnection] = [:]
    /// The server's methods by path, from ``configure(context:)``.
    var methods: [String: MethodDescriptor] = [:]
    /// The bound address, or why binding failed; callers waiting for it until then.
    var address: Result<SocketAddress, any Error>?
    var addressWaiters: [CheckedContinuation<SocketAddress, any Error>] = []
    var shuttingDown = false
    /// The grace period ran out: connections still arriving are ended at once.
    var graceExpired = false
  }

  /// - Parameters:
  ///   - host: Address to bind, e.g. "127.0.0.1" or "0.0.0.0".
  ///   - port: Port to bind; 0 picks a free one (see ``listeningAddress``).
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
  }

  /// The address the transport listens on, once ``listen(streamHandler:)`` has bound it.
  public var listeningAddress: SocketAddress {
    get async throws {
      try await withCheckedThrowingContinuation { continuation in
        let known = state.withLock { state -> Result<SocketAddress, any Error>? in
          if state.address == nil { state.addressWaiters.append(continuation) }
          return state.address
        }
        if let known { continuation.resume(with: known) }
      }
    }
  }

  /// Bytes of the memory budget the connections hold now (nil before listening).
  var memoryBudgetInUse: Int? { state.withLock { $0.governance?.budget.bytesInUse } }

  /// Connections and buffered bytes now, against their limits: what the server's metrics show.
  public var statistics: WireListenerStatistics {
    state.withLock { state in
      WireListenerStatistics(
        openConnections: state.connections.count, maxConnections: config.maxConnections,
        bufferedBytes: state.governance?.budget.bytesInUse ?? 0, budgetBytes: config.memoryBudgetBytes,
        residentBytes: ProcessMemory.residentBytes(), memoryLimitBytes: config.memoryLimitBytes)
    }
  }

  private func settleAddress(_ result: Result<SocketAddress, any Error>) {
    let waiters = state.withLock { state in
      state.address = result
      defer { state.addressWaiters.removeAll() }
      return state.addressWaiters
    }
    for waiter in waiters { waiter.resume(with: result) }
  }

  /// Learns the server's methods, so each call's descriptor carries its real type (unary,
  /// streaming) rather than what a bare path can tell.
  public func configure(context: GRPCServerContext) {
    let methods = Dictionary(context.methods.map { ("/\($0.fullyQualifiedMethod)", $0) }, uniquingKeysWith: { a, _ in a })
    state.withLock { $0.methods = methods }
  }

  public func listen(
    streamHandler: @escaping @Sendable (
      _ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext
    ) async -> Void
  ) async throws {
    let config = self.config
    let logger = self.logger
    let methods = state.withLock { $0.methods }
    let governance = makeGovernance()
    state.withLock { $0.governance = governance }
    let admission = ConnectionAdmission(
      maxConnections: effectiveMaxConnections(), maxPerAddress: config.maxConnectionsPerAddress, budget: governance.budget,
      log: governance.badConnectionLog, logger: logger)
    let serverChannel: NIOAsyncChannel<WireConnection, Never>
    do {
      serverChannel = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .serverChannelOption(.backlog, value: 256)
        .serverChannelInitializer { channel in
          channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(admission) }
        }
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .bind(host: host, port: port) { channel in
          channel.eventLoop.makeCompletedFuture {
            if let tls = config.tls { try channel.pipeline.syncOperations.addServerTLS(tls) }
            let connection = WireConnection(
              channel: channel, role: .server, limits: config.limits,
              idleTimeout: .nanoseconds(Int64(config.idleTimeout.wholeMicroseconds * 1_000)), logger: logger,
              methods: methods, governance: governance)
            try channel.pipeline.syncOperations.addWireHandlers(
              connection: connection,
              handshakeTimeout: .nanoseconds(Int64(config.handshakeTimeout.wholeMicroseconds * 1_000)))
            return connection
          }
        }
    } catch {
      let failure = RPCError(code: .unavailable, message: "cannot listen on \(host):\(port): \(error)", cause: error)
      settleAddress(.failure(failure))
      throw failure
    }
    let bound = serverChannel.channel.localAddress!
    settleAddress(.success(bound))
    let alreadyShuttingDown = state.withLock { state in
      state.serverChannel = serverChannel.channel
      return state.shuttingDown
    }
    if alreadyShuttingDown { serverChannel.channel.close(promise: nil) }
    logger.info("PEMIS wire listening", metadata: ["wire.address": "\(bound)"])
    let memoryWatch = config.memoryLimitBytes.map { limit in
      ProcessMemoryWatch(
        limit: limit, budget: governance.budget, logger: logger, resident: config.residentBytes ?? ProcessMemory.residentBytes
      ).start(on: serverChannel.channel.eventLoop)
    }
    defer { memoryWatch?.cancel() }

    try await withTaskCancellationHandler {
      try await acceptConnections(serverChannel, streamHandler: streamHandler)
    } onCancel: {
      // Cancelled rather than shut down: end everything now.
      let connections = self.state.withLock { state in
        state.shuttingDown = true
        state.graceExpired = true
        return Array(state.connections.values)
      }
      serverChannel.channel.close(promise: nil)
      for connection in connections { connection.cancelAllStreams(reason: "server stopped") }
    }
  }

  private func makeGovernance() -> WireGovernance {
    func amount(_ duration: Duration?) -> TimeAmount? {
      duration.map { .nanoseconds(Int64($0.wholeMicroseconds * 1_000)) }
    }
    return WireGovernance(
      budgetBytes: config.memoryBudgetBytes, halfCloseTimeout: amount(config.halfCloseTimeout),
      unreadResponseTimeout: amount(config.unreadResponseTimeout),
      maxUnwrittenBytesPerConnection: config.maxUnwrittenResponseBytesPerConnection,
      maxBufferedRequestBytesPerConnection: config.maxBufferedRequestBytesPerConnection,
      logLinesPerMinute: config.badConnectionLogLinesPerMinute)
  }

  /// The connection limit in force: the configured one, or less if the descriptor limit is lower.
  private func effectiveMaxConnections() -> Int {
    guard let descriptors = DescriptorLimit.raiseSoftLimit() else { return config.maxConnections }
    // The headroom, or half the descriptors if they are few.
    let fit = max(1, descriptors - min(config.descriptorHeadroom, descriptors / 2))
    if fit < config.maxConnections {
      logger.notice(
        "connection limit lowered to fit the descriptor limit",
        metadata: ["wire.max_connections": "\(fit)", "wire.rlimit_nofile": "\(descriptors)"])
    }
    return min(config.maxConnections, fit)
  }

  private func acceptConnections(
    _ serverChannel: NIOAsyncChannel<WireConnection, Never>,
    streamHandler: @escaping @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void
  ) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      try await serverChannel.executeThenClose { connections in
        for try await connection in connections {
          let key = ObjectIdentifier(connection)
          let (draining, expired) = state.withLock { state in
            state.connections[key] = connection
            return (state.shuttingDown, state.graceExpired)
          }
          if expired {
            connection.cancelAllStreams(reason: "server is shutting down")
          } else if draining {
            connection.beginDraining(reason: "server is shutting down")
          }
          group.addTask {
            await Self.serve(connection, streamHandler: streamHandler)
            _ = self.state.withLock { $0.connections.removeValue(forKey: key) }
          }
        }
      }
    }
  }

  /// Runs one handler task per call on `connection` until the connection closes.
  private static func serve(
    _ connection: WireConnection,
    streamHandler: @escaping @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void
  ) async {
    await withDiscardingTaskGroup { group in
      for await stream in connection.newStreams {
        group.addTask {
          await withServerContextRPCCancellationHandle { handle in
            stream.cancellation.attach(handle)
            var context = ServerContext(
              descriptor: stream.descriptor, remotePeer: connection.remotePeer,
              localPeer: connection.localPeer, cancellation: handle)
            context.transportSpecific = PEMISWireCallContext(
              streamID: stream.id, deadline: stream.deadline,
              protocolVersion: connection.peerSettings?.version ?? WireProtocol.version)
            await streamHandler(stream.rpcStream, context)
          }
          connection.handlerFinished()
        }
      }
    }
  }

  /// Stops accepting connections, sends GOAWAY on every connection, lets calls in flight finish
  /// within the grace period and then cancels what is left.
  public func beginGracefulShutdown() {
    let (channel, connections, first) = state.withLock { state in
      defer { state.shuttingDown = true }
      return (state.serverChannel, Array(state.connections.values), !state.shuttingDown)
    }
    guard first else { return }
    logger.info("PEMIS wire shutting down", metadata: ["wire.connections": "\(connections.count)"])
    channel?.close(promise: nil)
    for connection in connections { connection.beginDraining(reason: "server is shutting down") }
    let grace = TimeAmount.nanoseconds(Int64(config.gracePeriod.wholeMicroseconds * 1_000))
    group.any().scheduleTask(in: grace) {
      let left = self.state.withLock { state in
        state.graceExpired = true
        return Array(state.connections.values)
      }
      for connection in left {
        connection.cancelAllStreams(reason: "server shut down before the call finished")
      }
    }
  }
}

/// What PEMIS wire tells a handler about its call, in `ServerContext.transportSpecific`.
public struct PEMISWireCallContext: ServerContext.TransportSpecific {
  /// The call's stream id on its connection.
  public var streamID: UInt32
  /// When the client stops waiting, if it set a deadline.
  public var deadline: ContinuousClock.Instant?
  /// The protocol version of the connection.
  public var protocolVersion: UInt32
}

extension ServerContext {
  /// The call's PEMIS wire details, when it arrived over PEMIS wire.
  public var pemisWire: PEMISWireCallContext? { transportSpecific as? PEMISWireCallContext }
}

/// A PEMIS wire listener's load (``PEMISWireServerTransport/statistics``).
public struct WireListenerStatistics: Sendable, Equatable {
  public var openConnections: Int
  public var maxConnections: Int
  /// Request and response bytes held by all connections, and the budget they share.
  public var bufferedBytes: Int
  public var budgetBytes: Int
  /// The process's resident memory (nil where it cannot be read), and the limit the server keeps
  /// under (`memoryLimitBytes`; nil: not watched).
  public var residentBytes: Int?
  public var memoryLimitBytes: Int?
}
