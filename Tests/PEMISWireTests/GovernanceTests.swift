import Foundation
import GRPCCore
import GRPCProtobuf
import NIOCore
import PEMISProto
import SwiftProtobuf
import Synchronization
import Testing

@testable import PEMISWire

/// Runs `body`, or gives up after `seconds` (a generous bound, not a timing assertion) and
/// returns nil, so a server that never reacts fails the test instead of hanging it.
func within<R: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> R) async throws -> R? {
  try await withThrowingTaskGroup(of: R?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
      return nil
    }
    defer { group.cancelAll() }
    return try await group.next() ?? nil
  }
}

/// Holds a raw connection across task boundaries in tests.
final class RawBox: @unchecked Sendable {
  var raw: RawConnection
  init(_ raw: RawConnection) { self.raw = raw }
}

@Suite("PEMIS wire: resource governance and metadata rules, from the outside")
struct GovernanceTests {
  // MARK: Metadata (this is a debug build: GRPCCore's assertion would end the process)

  @Test("CALL_START metadata breaking gRPC's rules gets INVALID_ARGUMENT; the server keeps serving", arguments: [
    true, false,
  ])
  func badMetadata(binaryUnderTextKey: Bool) async throws {
    try await withTestServer { server in
      var raw = try await RawConnection.connect(port: server.port)
      _ = try await raw.handshake()
      var entry = Pemis_Wire_V1_MetadataEntry()
      if binaryUnderTextKey {
        entry.key = "x-probe"
        entry.binary = Data([0xDE, 0xAD])
      } else {
        entry.key = "x-probe-bin"
        entry.text = "text"
      }
      var start = RawConnection.callStart("/pemis.v1.Echo/Get")
      start.metadata = [entry]
      try await raw.send(.callStart, stream: 1, start)
      try await raw.send(.message, stream: 1, echoRequest("bad"))
      try await raw.send(.closeSend, stream: 1, [])
      var end: Pemis_Wire_V1_CallEnd?
      while end == nil, let frame = try await raw.next() { end = frame.callEnd }
      #expect(end?.code == UInt32(Status.Code.invalidArgument.rawValue))
      #expect(end?.message.contains("metadata key '\(entry.key)'") == true, "\(end?.message ?? "")")
      // The same connection goes on.
      try await raw.send(.callStart, stream: 3, RawConnection.callStart("/pemis.v1.Echo/Get"))
      try await raw.send(.message, stream: 3, echoRequest("good"))
      try await raw.send(.closeSend, stream: 3, [])
      var ok: Pemis_Wire_V1_CallEnd?
      while ok == nil, let frame = try await raw.next() { ok = frame.callEnd }
      #expect(ok?.code == 0)
      await raw.close()
      // And so do other clients.
      try await withTestClient(server) { echo, _ in
        let reply = try await echo.get(.with { $0.text = "still here" })
        #expect(reply.text == "still here")
      }
    }
  }

  // MARK: Connection limits

  @Test("connections over the limit are closed without a HELLO; once one leaves, another gets in", arguments: [
    (perAddress: 3, total: 100), (perAddress: 100, total: 3),
  ])
  func connectionLimit(perAddress: Int, total: Int) async throws {
    try await withTestServer(config: .testing {
      $0.maxConnectionsPerAddress = perAddress
      $0.maxConnections = total
    }) { server in
      var held: [RawConnection] = []
      for _ in 0..<3 {
        var raw = try await RawConnection.connect(port: server.port)
        let reply = try await raw.handshake()
        #expect(reply?.kind == .hello)
        held.append(raw)
      }
      var extra = try await RawConnection.connect(port: server.port)
      let refused = try? await extra.handshake()
      #expect(refused == nil, "the fourth connection is closed, not served")
      await held.removeFirst().close()
      // The server notices the close in its own time: retry within a generous bound.
      var admitted = false
      for _ in 0..<100 where !admitted {
        var next = try await RawConnection.connect(port: server.port)
        if (try? await next.handshake())?.kind == .hello {
          admitted = true
          held.append(next)
        } else {
          try await Task.sleep(for: .milliseconds(50))
        }
      }
      #expect(admitted)
      for raw in held { await raw.close() }
    }
  }

  // MARK: Memory

  @Test("a client that never reads its answers is closed; a well-behaved client still gets answers")
  func neverReadingClient() async throws {
    let config = PEMISWireServerTransport.Config.testing {
      $0.memoryBudgetBytes = 8 * 1024 * 1024
      $0.maxUnwrittenResponseBytesPerConnection = 256 * 1024
      $0.unreadResponseTimeout = .seconds(1)
    }
    try await withTestServer(config: config) { server in
      var raw = try await RawConnection.connect(port: server.port)
      _ = try await raw.handshake()
      try await raw.channel.setOption(ChannelOptions.autoRead, value: false).get()
      // 20 calls, each up to 64 messages (the window) of 48 KiB: 60 MiB the client never reads.
      let word = String(repeating: "x", count: 48 * 1024)
      let request = try Pemis_V1_EchoRequest.with { $0.text = word; $0.repeat = 1000 }.serializedBytes() as [UInt8]
      for index in 0..<20 {
        let id = UInt32(2 * index + 1)
        // The server may close the connection before all of it is sent: that is what is tested.
        try? await raw.send(.callStart, stream: id, RawConnection.callStart("/pemis.v1.Echo/Expand"))
        try? await raw.send(.message, stream: id, request)
        try? await raw.send(.closeSend, stream: id, [])
      }
      try await withTestClient(server) { echo, _ in
        for round in 0..<5 {
          let reply = try await echo.get(.with { $0.text = "round \(round)" })
          #expect(reply.text == "round \(round)")
        }
      }
      // Still not reading: a PING now and then notices when the server has closed the connection.
      let channel = raw.channel
      let closed = try await within(seconds: 60) { () -> Bool in
        while channel.isActive {
          var ping = ByteBuffer()
          Frame.encode(kind: .ping, streamID: 0, bytes: [UInt8](repeating: 1, count: 8), into: &ping)
          try? await channel.writeAndFlush(ping)
          try await Task.sleep(for: .milliseconds(200))
        }
        return true
      }
      #expect(closed == true, "the server did not close the connection of a client that never reads")
      await raw.close()
    }
  }

  @Test("clients that never read and spend the whole memory budget do not hold up a client that reads")
  func budgetSpentByNeverReaders() async throws {
    let config = PEMISWireServerTransport.Config.testing {
      $0.memoryBudgetBytes = 1024 * 1024
      $0.maxUnwrittenResponseBytesPerConnection = 512 * 1024
      // Longer than the test: the never-readers keep the budget spent throughout.
      $0.unreadResponseTimeout = .seconds(300)
    }
    try await withTestServer(config: config) { server in
      // 6 connections × 512 KiB of answers they never read: the 1 MiB budget is spent.
      let word = String(repeating: "x", count: 48 * 1024)
      let request = try Pemis_V1_EchoRequest.with { $0.text = word; $0.repeat = 1000 }.serializedBytes() as [UInt8]
      var stalled: [RawConnection] = []
      for _ in 0..<6 {
        var raw = try await RawConnection.connect(port: server.port)
        _ = try await raw.handshake()
        try await raw.channel.setOption(ChannelOptions.autoRead, value: false).get()
        for index in 0..<4 {
          let id = UInt32(2 * index + 1)
          try await raw.send(.callStart, stream: id, RawConnection.callStart("/pemis.v1.Echo/Expand"))
          try await raw.send(.message, stream: id, request)
          try await raw.send(.closeSend, stream: id, [])
        }
        stalled.append(raw)
      }
      try await Task.sleep(for: .seconds(2))
      // Before: every writer of every connection waited for the budget, polling, until the
      // never-readers were closed (here after 300 s), and a new request failed RESOURCE_EXHAUSTED.
      // 64 KiB each way: more than the slack the never-readers' 48 KiB messages can leave.
      let padding = String(repeating: "y", count: 64 * 1024)
      let answered = try await within(seconds: 60) {
        try await withTestClient(server) { echo, _ in
          for round in 0..<5 {
            let reply = try await echo.get(.with { $0.text = "round \(round) \(padding)" })
            #expect(reply.text == "round \(round) \(padding)")
          }
          return true
        }
      }
      #expect(answered == true, "a client that reads its answers waited for clients that never read")
      for raw in stalled { await raw.close() }
    }
  }

  @Test("answers waiting for a client that never reads count against the budget, with the requests their handlers hold")
  func waitingAnswersCount() async throws {
    let budget = 2 * 1024 * 1024
    let config = PEMISWireServerTransport.Config.testing {
      $0.memoryBudgetBytes = budget
      $0.maxUnwrittenResponseBytesPerConnection = 256 * 1024
      $0.unreadResponseTimeout = .seconds(300)
    }
    try await withTestServer(config: config) { server in
      var raw = try await RawConnection.connect(port: server.port)
      _ = try await raw.handshake()
      try await raw.channel.setOption(ChannelOptions.autoRead, value: false).get()
      // 60 calls of 256 KiB, echoed: 30 MiB the server would hold for a client that reads none,
      // well past what the kernel's socket buffers take (a few MiB).
      let request = try Pemis_V1_EchoRequest.with { $0.payload = Data(repeating: 7, count: 256 * 1024) }.serializedBytes() as [UInt8]
      let calls = 60
      // Sent without waiting: the server stops reading a client whose answers back up, so the
      // writes finish only once this side reads.
      let channel = raw.channel
      let start = try RawConnection.callStart("/pemis.v1.Echo/Get").serializedBytes() as [UInt8]
      let sending = Task {
        for index in 0..<calls {
          let id = UInt32(2 * index + 1)
          var frames = ByteBuffer()
          Frame.encode(kind: .callStart, streamID: id, bytes: start, into: &frames)
          Frame.encode(kind: .message, streamID: id, bytes: request, into: &frames)
          Frame.encode(kind: .closeSend, streamID: id, bytes: [], into: &frames)
          try? await channel.writeAndFlush(frames)
        }
      }
      // Before, only unread requests and unwritten answers counted: here at most the 256 KiB
      // backlog and one message, whatever the handlers waiting to answer held.
      let transport = server.transport
      let filled = try await within(seconds: 60) { () -> Int in
        while true {
          let held = transport.memoryBudgetInUse ?? 0
          if held >= 3 * budget / 4 { return held }
          try await Task.sleep(for: .milliseconds(10))
        }
      }
      #expect(filled != nil, "the budget never counted what the waiting handlers hold")
      // Now read: every call ends, answered or refused (RESOURCE_EXHAUSTED: the budget was spent).
      try await raw.channel.setOption(ChannelOptions.autoRead, value: true).get()
      let box = RawBox(raw)
      let ends = try await within(seconds: 60) { () -> [Pemis_Wire_V1_CallEnd] in
        var ends: [Pemis_Wire_V1_CallEnd] = []
        while ends.count < calls, let frame = try await box.raw.next() {
          if let end = frame.callEnd { ends.append(end) }
        }
        return ends
      }
      let codes = Set(ends?.map(\.code) ?? [])
      #expect(ends?.count == calls, "every call ends")
      #expect(codes.isSubset(of: [0, 8]), "answered or RESOURCE_EXHAUSTED, nothing else: \(codes)")
      await sending.value
      await box.raw.close()
      let released = try await within(seconds: 30) { () -> Bool in
        while (transport.memoryBudgetInUse ?? 0) > 0 { try await Task.sleep(for: .milliseconds(10)) }
        return true
      }
      #expect(released == true, "the connection closed and its budget was not given back")
    }
  }

  @Test("a server short of memory refuses new connections and takes them again once memory is freed")
  func memoryPressure() async throws {
    let resident = Mutex(100 * 1024 * 1024)
    let config = PEMISWireServerTransport.Config.testing {
      $0.memoryLimitBytes = 448 * 1024 * 1024
      $0.residentBytes = { resident.withLock { $0 } }
    }
    try await withTestServer(config: config) { server in
      var first = try await RawConnection.connect(port: server.port)
      #expect(try await first.handshake()?.kind == .hello)
      resident.withLock { $0 = 400 * 1024 * 1024 }
      // The watch samples every 20 ms: within a generous bound, a new connection is closed.
      var refused = false
      for _ in 0..<200 where !refused {
        var next = try await RawConnection.connect(port: server.port)
        if (try? await next.handshake()) == nil { refused = true } else { await next.close() }
        if !refused { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(refused, "a new connection was served while the server was short of memory")
      // A connection already open and holding nothing still gets its call through.
      try await first.send(.callStart, stream: 1, RawConnection.callStart("/pemis.v1.Echo/Get"))
      try await first.send(.message, stream: 1, echoRequest("still here"))
      try await first.send(.closeSend, stream: 1, [])
      var end: Pemis_Wire_V1_CallEnd?
      while end == nil, let frame = try await first.next() { end = frame.callEnd }
      #expect(end?.code == 0)
      resident.withLock { $0 = 200 * 1024 * 1024 }
      var admitted = false
      for _ in 0..<200 where !admitted {
        var next = try await RawConnection.connect(port: server.port)
        if (try? await next.handshake())?.kind == .hello { admitted = true }
        await next.close()
        if !admitted { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(admitted, "the server kept refusing after memory was freed")
      await first.close()
    }
  }

  // MARK: Calls that make no progress

  @Test("a call that never half-closes ends with DEADLINE_EXCEEDED after the limit; the connection goes on")
  func halfCloseLimit() async throws {
    // 2 s, not less: the follow-up call must not hit the limit on a loaded machine.
    try await withTestServer(config: .testing { $0.halfCloseTimeout = .seconds(2) }) { server in
      let box = RawBox(try await RawConnection.connect(port: server.port))
      _ = try await box.raw.handshake()
      try await box.raw.send(.callStart, stream: 1, RawConnection.callStart("/pemis.v1.Echo/Collect"))
      try await box.raw.send(.message, stream: 1, echoRequest("never done"))
      let end = try await within(seconds: 30) { () -> Pemis_Wire_V1_CallEnd? in
        while let frame = try await box.raw.next() { if let end = frame.callEnd { return end } }
        return nil
      }
      #expect(end??.code == UInt32(Status.Code.deadlineExceeded.rawValue))
      #expect(end??.message.contains("CLOSE_SEND") == true)
      try await box.raw.send(.callStart, stream: 3, RawConnection.callStart("/pemis.v1.Echo/Get"))
      try await box.raw.send(.message, stream: 3, echoRequest("next"))
      try await box.raw.send(.closeSend, stream: 3, [])
      var ok: Pemis_Wire_V1_CallEnd?
      while ok == nil, let frame = try await box.raw.next() { ok = frame.callEnd }
      #expect(ok?.code == 0)
      await box.raw.close()
    }
  }

  @Test("a call stuck waiting for its client does not keep the connection from the idle timeout")
  func idleWithStuckCall() async throws {
    try await withTestServer(config: .testing {
      // 10 s: the call must start before the connection is idle, even when CI starts every
      // suite at once on 2 cores (2 s was not enough there).
      $0.idleTimeout = .seconds(10)
      $0.halfCloseTimeout = nil
    }) { server in
      let box = RawBox(try await RawConnection.connect(port: server.port))
      _ = try await box.raw.handshake()
      try await box.raw.send(.callStart, stream: 1, RawConnection.callStart("/pemis.v1.Echo/Collect"))
      try await box.raw.send(.message, stream: 1, echoRequest("and then nothing"))
      let frames = try await within(seconds: 60) { await box.raw.drainUntilClosed() }
      #expect(frames?.compactMap(\.goAway).first?.code == .idleTimeout)
    }
  }

  // MARK: Logging

  @Test("bad-connection log lines are limited per window; the next line reports how many were held back")
  func rateLimitedLog() {
    let start = ContinuousClock.now
    let log = RateLimitedLog(linesPerWindow: 5, window: .seconds(60), start: start)
    let admitted = (0..<100).compactMap { _ in log.admit(at: start + .seconds(1)) }
    #expect(admitted == [0, 0, 0, 0, 0])
    #expect(log.admit(at: start + .seconds(61)) == 95)
    #expect(log.admit(at: start + .seconds(62)) == 0)
  }
}
