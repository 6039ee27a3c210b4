#if DEBUG
  internal import Foundation
  internal import GRPCCore
  internal import NIOCore
  internal import SwiftProtobuf
  // The state machine is internal to the wire: the fuzzer drives it as `WireConnection` does, and
  // a debug build (assertions on, as the fuzz build is) lets it in.
  @testable internal import PEMISWire

  /// The connection state machine under fuzzing: any sequence of frames from the peer, timer
  /// ticks and application steps (a handler consumes a message, sends one, returns; the socket
  /// takes bytes; the server drains; the channel closes), driven the way `WireConnection` drives
  /// it, with the machine's invariants checked after every step:
  ///
  /// - every byte buffered is accounted to an open stream, and nothing goes negative;
  /// - a server never holds more streams than its limit, or counts handlers other than those running;
  /// - a stream id is opened once, odd and increasing (server), and never above a GOAWAY's promise
  ///   or after the client's own GOAWAY (the drain race);
  /// - a failed or closed connection acts on nothing more; a closed one holds no stream;
  /// - flow-control windows stay within what was granted;
  /// - a writer told to wait is not told it may retry until it may (a spinning writer).
  ///
  /// Input layout: byte 0 picks the role and the limits, byte 1 the buffer limits, then operations
  /// (an opcode byte and its operands; a short input reads zeros).
  public enum StateMachineFuzzing {
    typealias Machine = WireConnection.StateMachine

    public static func run(_ input: UnsafeRawBufferPointer) {
      var driver = Driver(input)
      while driver.reader.hasMore { driver.step() }
      driver.check()
    }

    /// Seed inputs: conversations written as operations (opcodes of ``Driver/step()``).
    public static func seeds() -> [(name: String, bytes: [UInt8])] {
      let server: [UInt8] = [0x12, 0x07]  // window 7, 1 call at once, small buffers
      let wideServer: [UInt8] = [0x40, 0x33]  // window 1, 3 calls at once
      let client: [UInt8] = [0x13, 0x07]
      let hello: [UInt8] = [1, 0, 4, 0]  // version 1, 4 MiB frames, window 4, no call limit
      func call(_ id: UInt8, path: UInt8) -> [UInt8] { [2, id, path, 0, 10] }  // no metadata, 1 s deadline
      func message(_ id: UInt8, _ eights: UInt8) -> [UInt8] { [3, id, eights] }
      func closeSend(_ id: UInt8) -> [UInt8] { [4, id] }
      let consume: [UInt8] = [11, 0]
      let handlerReturns: [UInt8] = [12, 0]
      let send: [UInt8] = [13, 0, 40, 0]
      let written: [UInt8] = [14, 255]
      func tick(_ quarterSeconds: UInt8) -> [UInt8] { [10, quarterSeconds] }
      let get: UInt8 = 2, collect: UInt8 = 0, update: UInt8 = 3
      return [
        ("server-unary", server + hello + call(1, path: get) + message(1, 5) + closeSend(1) + consume + send + written + handlerReturns),
        ("server-unary-two-messages", server + hello + call(1, path: get) + message(1, 5) + message(1, 5) + handlerReturns),
        ("server-unary-no-message", server + hello + call(1, path: get) + closeSend(1) + handlerReturns),
        ("server-stream-window",
         wideServer + hello + call(1, path: collect) + message(1, 1) + message(1, 1) + consume + message(1, 1)
          + [6, 1, 0, 0, 0, 5, 1] + call(3, path: update) + send + send + closeSend(1) + handlerReturns + handlerReturns),
        ("server-drain-race", server + hello + call(1, path: update) + [15] + call(3, path: get) + message(1, 2) + closeSend(1) + handlerReturns),
        ("server-client-goaway", server + hello + [7, 0] + call(1, path: get) + [8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]),
        ("server-timeouts", server + hello + call(1, path: update) + tick(200) + tick(200) + message(1, 1) + send + tick(255) + tick(255)),
        ("server-no-hello", server + tick(30) + call(1, path: get)),
        ("server-metadata",
         server + hello + [2, 1, get, 2, 1, 1, 3, 0xDE, 0xAD, 0xBE, 2, 0, 0] + message(1, 1) + closeSend(1)
          + [2, 3, get, 1, 2, 1, 2, 0, 1, 0] + [2, 5, get, 1, 1, 0, 0]),
        ("server-oversized", server + hello + [9, 2, 3, 0] + call(1, path: collect) + [9, 4, 1, 1] + [17, 1, 20]),
        ("server-budget", server + hello + call(1, path: collect) + [17, 1, 200] + handlerReturns + [19]),
        ("client-call",
         client + hello + [18] + [2, 1, 0] + message(1, 5) + [4, 1, 0, 0] + [18] + [7, 1] + [18] + [16]),
        ("raw-frames", server + [0, 1, 0, 0, 3, 8, 1, 0] + [0, 2, 0, 1, 3, 0x0A, 0x01, 0x2F] + [0, 10, 0, 0, 4, 0, 0, 0, 1]),
      ]
    }

    /// Reads operands; past the end, zeros.
    struct Reader {
      let bytes: UnsafeRawBufferPointer
      var offset = 0
      init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
      var hasMore: Bool { offset < bytes.count }
      mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
      }
      mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }
      mutating func uint32() -> UInt32 { bytes(4).reduce(0) { $0 << 8 | UInt32($1) } }
    }

    static let methods: [String: MethodDescriptor] = [
      "/pemis.v1.Echo/Get": MethodDescriptor(fullyQualifiedService: "pemis.v1.Echo", method: "Get", type: .unary),
      "/pemis.v1.Echo/Collect": MethodDescriptor(fullyQualifiedService: "pemis.v1.Echo", method: "Collect", type: .clientStreaming),
      "/pemis.v1.Echo/Expand": MethodDescriptor(fullyQualifiedService: "pemis.v1.Echo", method: "Expand", type: .serverStreaming),
      "/pemis.v1.Echo/Update": MethodDescriptor(fullyQualifiedService: "pemis.v1.Echo", method: "Update", type: .bidirectionalStreaming),
    ]
    static let paths = Array(methods.keys).sorted() + ["/pemis.v1.Other/Call", "no-slash", "", "/a/b/c", "/pemis.v1.Echo/"]
    static let keys = [
      "authorization", "trace-bin", "x-note", "Bad-Key", "", "grpc-timeout", "a-bin", String(repeating: "k", count: 300),
      "ключ", "x.y_z-1",
    ]
    static let texts = ["Bearer token", "说明", "line\nbreak", "", "~ ok ~", "\u{0}"]

    struct Driver {
      var reader: Reader
      var machine: Machine
      var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
      let role: WireConnection.Role
      let limits: WireLimits
      /// Server: handlers started and not yet returned.
      var running: Set<UInt32> = []
      /// Sizes of messages delivered to each stream and not yet consumed, oldest first.
      var delivered: [UInt32: [Int]] = [:]
      /// Every stream id ever opened.
      var opened: Set<UInt32> = []
      /// A GOAWAY (or a timeout's close) went out: nothing more is acted on.
      var failed = false

      init(_ input: UnsafeRawBufferPointer) {
        reader = Reader(input)
        let shape = reader.byte()
        let buffers = reader.byte()
        role = shape & 1 == 0 ? .server : .client
        limits = WireLimits(
          maxFrameSize: 1024 << Int((shape >> 1) & 3), initialStreamWindow: 1 + Int((shape >> 3) & 3) * 3,
          maxConcurrentStreams: 1 + Int(shape >> 5))
        machine = Machine(
          role: role, limits: limits,
          timeouts: .init(handshake: .seconds(5), idle: .seconds(60), halfClose: .seconds(30), unreadResponses: .seconds(10)),
          now: now, maxBufferedInboundBytes: 256 * (1 + Int(buffers & 15)), maxUnwrittenBytes: 512 * (1 + Int(buffers >> 4)),
          methods: StateMachineFuzzing.methods)
      }

      /// A stream id from one byte: small odd and even ids, and the edges of the id space.
      mutating func streamID() -> UInt32 {
        let byte = reader.byte()
        switch byte {
        case 0xFF: return UInt32.max
        case 0xFE: return UInt32(Int32.max)
        case 0xFD: return machine.highestStreamID &+ 2
        default: return UInt32(byte)
        }
      }

      mutating func payload() -> [UInt8] { reader.bytes(Int(reader.byte())) }

      mutating func metadata() -> [Pemis_Wire_V1_MetadataEntry] {
        (0..<Int(reader.byte() % 4)).map { _ in
          var entry = Pemis_Wire_V1_MetadataEntry()
          let pick = reader.byte()
          entry.key = StateMachineFuzzing.keys[Int(pick) % StateMachineFuzzing.keys.count]
          switch reader.byte() % 3 {
          case 0: entry.text = StateMachineFuzzing.texts[Int(pick / 16) % StateMachineFuzzing.texts.count]
          case 1: entry.binary = Data(reader.bytes(Int(reader.byte() % 8)))
          default: break
          }
          return entry
        }
      }

      mutating func step() {
        let op = reader.byte() % 20
        switch op {
        case 0:  // any frame: kind, flags, stream, payload
          let kind = Frame.Kind(rawValue: reader.byte() % 12)
          let flags = Frame.Flags(rawValue: reader.byte())
          receive(kind, streamID(), payload(), flags: flags)
        case 1:  // HELLO with versions and limits from the input
          var hello = Pemis_Wire_V1_Hello()
          let shape = reader.byte()
          hello.minVersion = shape & 0x80 == 0 ? 1 : UInt32(shape & 3)
          hello.maxVersion = shape & 0x40 == 0 ? 1 : UInt32((shape >> 2) & 3)
          hello.maxFrameSize = shape & 0x20 == 0 ? 4 * 1024 * 1024 : UInt32(reader.byte()) * 16
          hello.initialStreamWindow = UInt32(reader.byte() % 8)
          hello.maxConcurrentStreams = UInt32(reader.byte() % 4)
          receive(.hello, 0, try! hello.serializedBytes())
        case 2:  // CALL_START (server) or RESPONSE_START (client)
          let id = streamID()
          if role == .server {
            var start = Pemis_Wire_V1_CallStart()
            start.method = StateMachineFuzzing.paths[Int(reader.byte()) % StateMachineFuzzing.paths.count]
            start.metadata = metadata()
            start.timeoutMicros = UInt64(reader.byte()) * 100_000
            receive(.callStart, id, try! start.serializedBytes())
          } else {
            var start = Pemis_Wire_V1_ResponseStart()
            start.metadata = metadata()
            receive(.responseStart, id, try! start.serializedBytes())
          }
        case 3:  // MESSAGE of up to 255 × 8 bytes
          let id = streamID()
          receive(.message, id, [UInt8](repeating: 0x5A, count: Int(reader.byte()) * 8))
        case 4:  // CLOSE_SEND (server) or CALL_END (client)
          let id = streamID()
          if role == .server {
            receive(.closeSend, id, [])
          } else {
            var end = Pemis_Wire_V1_CallEnd()
            end.code = UInt32(reader.byte() % 20)
            end.trailers = metadata()
            receive(.callEnd, id, try! end.serializedBytes())
          }
        case 5:  // CANCEL
          let id = streamID()
          receive(.cancel, id, payload())
        case 6:  // WINDOW_UPDATE
          let id = streamID()
          var increment = [UInt8]()
          withUnsafeBytes(of: reader.uint32().bigEndian) { increment = Array($0) }
          receive(.windowUpdate, id, reader.byte() % 8 == 0 ? Array(increment.prefix(2)) : increment)
        case 7:  // GOAWAY
          var goAway = Pemis_Wire_V1_GoAway()
          goAway.lastStreamID = UInt32(reader.byte())
          goAway.reason = "fuzz"
          receive(.goAway, 0, try! goAway.serializedBytes())
        case 8:  // PING, maybe an ACK, maybe the wrong size
          let flags: Frame.Flags = reader.byte() & 1 == 1 ? .ack : []
          receive(.ping, 0, reader.bytes(reader.byte() % 4 == 0 ? 7 : 8), flags: flags)
        case 9:  // a frame header over the limit
          let kind = Frame.Kind(rawValue: reader.byte() % 12)
          let id = streamID()
          let length = limits.maxFrameSize + 1 + Int(reader.byte()) * 1000
          act(machine.receive(.oversized(kind: kind, flags: [], streamID: id, length: length), now: now))
        case 10:  // time passes (up to ~65 s) and the timers fire
          now = now + .milliseconds(Int64(reader.byte()) * 256)
          for action in machine.tick(now: now) {
            switch action {
            case .close: failed = true
            case .endCall(let id, _, let closeNow): ended(id, closeNow: closeNow)
            }
          }
        case 11:  // the application consumes the oldest message delivered to a stream
          guard let id = pick(Array(delivered.keys)), let size = delivered[id]?.first else { return }
          delivered[id]!.removeFirst()
          if delivered[id]!.isEmpty { delivered[id] = nil }
          if let grant = machine.messageConsumed(id, size: size) {
            precondition(grant > 0, "a WINDOW_UPDATE of 0 would be granted")
          }
        case 12:  // a handler returns: its CALL_END goes out and the stream ends
          guard role == .server, let id = pick(Array(running)) else { return }
          running.remove(id)
          machine.handlerFinished()
          if machine.streams[id] != nil {
            delivered[id] = nil
            if machine.removeStream(id, now: now) { closed() }
          }
        case 13:  // a writer sends a MESSAGE on a stream, maybe with the server's budget spent
          guard let id = pick(Array(machine.streams.keys)) else { return }
          let size = Int(reader.byte()) * 16 + Frame.headerSize
          let flags = reader.byte()
          let writable = flags & 1 == 0
          let overBudget = flags & 2 != 0
          switch machine.sendMessage(id, size: size, writable: writable, overBudget: overBudget) {
          case .send:
            machine.queued(size, now: now)
          case .waitForSocket:
            precondition(!machine.mayRetryWrite(size: size, writable: writable, drained: false), "told to wait for the socket and to retry: a spinning writer")
          case .waitForDrain:
            precondition(overBudget && machine.unwrittenBytes > 0, "told to wait for the drain within the budget or with nothing unwritten")
            precondition(!machine.mayRetryWrite(size: size, writable: writable, drained: true), "told to wait for the drain and to retry: a spinning writer")
          case .waitForCredit:
            precondition(machine.streams[id].map { $0.sendCredits == 0 } ?? false, "told to wait for credit with credit left")
          case .gone:
            precondition(machine.streams[id] == nil || machine.isClosed, "an open stream reported gone")
          }
        case 14:  // the socket takes bytes
          _ = machine.written(Int(reader.byte()) * 64, now: now)
        case 15:  // the server begins a graceful close
          let (_, closeNow) = machine.beginDraining()
          if closeNow { closed() }
        case 16:  // the channel closes
          closed()
        case 17:  // a MESSAGE the server-wide memory budget cannot take
          let id = streamID()
          let bytes = [UInt8](repeating: 0x33, count: Int(reader.byte()))
          let frame = Frame(kind: .message, streamID: id, payload: ByteBuffer(bytes: bytes))
          act(machine.receiveMessageOverBudget(frame, budget: 1024, now: now), size: bytes.count)
        case 18:  // client: the application opens a call
          guard role == .client else { return }
          if case .success(let id) = machine.openClientStream(now: now) {
            precondition(!opened.contains(id) && id % 2 == 1, "client stream id \(id) reused or even")
            opened.insert(id)
          }
        default:  // the grace period runs out: every stream ends
          for id in machine.removeAllStreams(now: now) { delivered[id] = nil }
        }
        check()
      }

      mutating func pick<T: Comparable>(_ values: [T]) -> T? {
        let choice = reader.byte()
        guard !values.isEmpty else { return nil }
        return values.sorted()[Int(choice) % values.count]
      }

      mutating func receive(_ kind: Frame.Kind, _ id: UInt32, _ payload: [UInt8], flags: Frame.Flags = []) {
        let frame = Frame(kind: kind, flags: flags, streamID: id, payload: ByteBuffer(bytes: payload))
        act(machine.receive(.frame(frame), now: now), size: payload.count)
      }

      /// Performs what the machine asked for, as `WireConnection` would, checking each action
      /// against the rules first.
      mutating func act(_ action: Machine.ReceiveAction, size: Int = 0) {
        if failed || machine.isClosed {
          precondition(action == .ignore, "a failed or closed connection acted on a frame: \(action)")
          return
        }
        switch action {
        case .ignore, .pong, .creditGranted, .handshakeComplete, .responseMetadata:
          break
        case .fail:
          precondition(!machine.isReading, "the connection failed but still reads")
          failed = true
        case .openCall(let id, _, let metadata, _):
          precondition(role == .server, "a client opened a call from the peer")
          precondition(!opened.contains(id), "stream \(id) opened twice")
          precondition(id % 2 == 1, "server opened even stream \(id)")
          precondition(machine.goAwaySent.map { id <= $0 } ?? true, "stream \(id) opened above the GOAWAY's promise")
          precondition(machine.goAwayReceived == nil, "stream \(id) opened after the client's own GOAWAY")
          precondition(machine.streams[id] != nil, "an opened call has no stream")
          for entry in metadata {
            if case .binary = entry.value { precondition(entry.key.hasSuffix("-bin"), "binary metadata under \(entry.key)") }
          }
          opened.insert(id)
          running.insert(id)
        case .refuseCall(let id, _):
          precondition(machine.streams[id] == nil, "a refused call has a stream")
        case .deliverMessage(let id):
          precondition(machine.streams[id] != nil, "a message delivered to a stream that is not open")
          delivered[id, default: []].append(size)
        case .finishInbound(let id):
          precondition(machine.streams[id]?.remoteClosed == true, "CLOSE_SEND not recorded on stream \(id)")
        case .endCall(let id, _, let closeNow), .callEnded(let id, _, _, let closeNow), .callCancelled(let id, _, let closeNow):
          ended(id, closeNow: closeNow)
        case .peerGoingAway(let unprocessed, _, let closeNow):
          for id in unprocessed { ended(id, closeNow: false) }
          if closeNow { closed() }
        }
      }

      mutating func ended(_ id: UInt32, closeNow: Bool) {
        precondition(machine.streams[id] == nil, "stream \(id) ended but is still open")
        delivered[id] = nil
        if closeNow { closed() }
      }

      mutating func closed() {
        for id in machine.closed() { delivered[id] = nil }
        failed = true
      }

      /// The machine's invariants, after every step.
      func check() {
        var buffered = 0
        var handled = 0
        for (id, stream) in machine.streams {
          precondition(stream.bufferedBytes >= 0, "stream \(id) buffers \(stream.bufferedBytes) bytes")
          precondition(
            stream.bufferedBytes == (delivered[id] ?? []).reduce(0, +),
            "stream \(id) buffers \(stream.bufferedBytes) bytes; \(delivered[id] ?? []) were delivered and not consumed")
          precondition(stream.receiveAllowance >= 0 && stream.receiveAllowance <= limits.initialStreamWindow, "stream \(id) allowance \(stream.receiveAllowance)")
          precondition(stream.sendCredits >= 0 && stream.sendCredits <= Int(Int32.max), "stream \(id) credits \(stream.sendCredits)")
          precondition(id <= machine.highestStreamID, "stream \(id) above the highest id \(machine.highestStreamID)")
          precondition(id % 2 == 1, "even stream \(id)")
          precondition(stream.handledBytes >= 0, "stream \(id) holds \(stream.handledBytes) handled bytes")
          buffered += stream.bufferedBytes
          handled += stream.handledBytes
        }
        precondition(machine.bufferedInboundBytes == buffered, "connection buffers \(machine.bufferedInboundBytes) bytes; streams hold \(buffered)")
        precondition(
          machine.handledInboundBytes == handled, "connection counts \(machine.handledInboundBytes) handled bytes; streams hold \(handled)")
        precondition(machine.heldBytes >= 0, "held bytes \(machine.heldBytes)")
        precondition(machine.unwrittenBytes >= 0, "unwritten bytes \(machine.unwrittenBytes)")
        if role == .server {
          precondition(machine.streams.count <= limits.maxConcurrentStreams, "\(machine.streams.count) streams over the limit")
          precondition(machine.runningHandlers == running.count, "\(machine.runningHandlers) handlers counted, \(running.count) running")
          precondition(Set(machine.streams.keys).isSubset(of: opened), "a stream the application never saw opened")
        }
        if machine.isClosed { precondition(machine.streams.isEmpty, "a closed connection holds streams") }
      }
    }
  }
#else
  /// The connection state machine is fuzzed in debug builds only (assertions on, and the machine
  /// reachable with `@testable import`).
  public enum StateMachineFuzzing {
    public static func run(_ input: UnsafeRawBufferPointer) {
      fatalError("the state-machine fuzzer needs a debug build: tools/fuzz.sh builds one")
    }
    public static func seeds() -> [(name: String, bytes: [UInt8])] { [] }
  }
#endif
