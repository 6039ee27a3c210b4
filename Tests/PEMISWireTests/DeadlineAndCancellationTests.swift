import Foundation
import GRPCCore
import GRPCProtobuf
import PEMISProto
import SwiftProtobuf
import Testing

@testable import PEMISWire

@Suite("PEMIS wire: deadlines and cancellation")
struct DeadlineAndCancellationTests {
  @Test("the handler sees the time left before the caller's deadline")
  func handlerSeesRemainingTime() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        // A generous deadline: on a loaded machine the call may take seconds to reach the handler,
        // and what matters is that the handler sees the caller's deadline, less the time spent.
        var options = CallOptions.defaults
        options.timeout = .seconds(60)
        let response = try await echo.get(.with { $0.text = "t" }, options: options)
        #expect(response.remainingDeadlineMs > 30_000)
        #expect(response.remainingDeadlineMs <= 60_000)
      }
    }
  }

  @Test("a call past its deadline fails with DEADLINE_EXCEEDED and the handler is cancelled")
  func deadlineExceeded() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        var options = CallOptions.defaults
        // Long enough for the call to reach the handler even on a loaded machine.
        options.timeout = .seconds(2)
        let started = ContinuousClock.now
        let error = await #expect(throws: RPCError.self) {
          try await echo.get(.with { $0.text = "slow"; $0.delayMs = 60_000 }, options: options)
        }
        #expect(error?.code == .deadlineExceeded)
        // Ended by the deadline, not by the handler's 60 s: a bound a loaded CI machine meets.
        #expect(ContinuousClock.now - started < .seconds(50))
        #expect(await server.log.waitFor("cancelled:Get"), "the handler learned of the deadline")
      }
    }
  }

  @Test("the server enforces the deadline itself for clients that do not (raw CALL_START)")
  func serverSideDeadline() async throws {
    try await withTestServer { server in
      var raw = try await RawConnection.connect(port: server.port)
      _ = try await raw.handshake()
      try await raw.send(.callStart, stream: 1, RawConnection.callStart("/pemis.v1.Echo/Get", timeoutMicros: 3_000_000))
      try await raw.send(.message, stream: 1, echoRequest("slow", delayMs: 10_000))
      try await raw.send(.closeSend, stream: 1, [])
      var end: Pemis_Wire_V1_CallEnd?
      while end == nil, let frame = try await raw.next() { end = frame.callEnd }
      #expect(end?.code == UInt32(Status.Code.deadlineExceeded.rawValue))
      // On a loaded machine the deadline can pass before the handler even starts; if it did
      // start, it must have been cancelled.
      if server.log.events.contains("started:Get:slow") {
        #expect(await server.log.waitFor("cancelled:Get"))
      }
      await raw.close()
    }
  }

  @Test("cancelling the calling task cancels the handler on the server")
  func cancellationReachesHandler() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        let call = Task {
          try await echo.get(.with { $0.text = "wait"; $0.delayMs = 30_000 })
        }
        // Cancel once the handler runs (on a loaded machine the call may take a while to get there).
        #expect(await server.log.waitFor("started:Get:wait"))
        call.cancel()
        let result = await call.result
        #expect(throws: (any Error).self) { try result.get() }
        #expect(await server.log.waitFor("cancelled:Get"), "CANCEL reached the handler")
        // The connection is still good.
        let reply7 = try await echo.get(.with { $0.text = "after" })
        #expect(reply7.text == "after")
      }
    }
  }

  @Test("a streaming caller that stops reading early cancels the server's stream")
  func abandonedStream() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        let first = try await echo.expand(.with { $0.text = "x"; $0.repeat = 1000; $0.delayMs = 20 }) { response in
          for try await message in response.messages { return message.index }
          return UInt32.max
        }
        #expect(first == 0)
        #expect(await server.log.waitFor("cancelled:Expand"))
      }
    }
  }
}
