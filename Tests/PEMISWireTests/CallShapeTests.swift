import Foundation
import GRPCCore
import GRPCProtobuf
import PEMISProto
import SwiftProtobuf
import Testing

@testable import PEMISWire

@Suite("PEMIS wire: call shapes over loopback")
struct CallShapeTests {
  @Test("unary, with metadata both ways")
  func unary() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        // Text values are printable ASCII (gRPC's rule, docs/PROTOCOL.md section 5).
        var metadata: Metadata = ["x-probe": "yuan zhang ~!"]
        metadata.addBinary([0, 1, 2, 255], forKey: "x-probe-bin")
        let request = ClientRequest(message: Pemis_V1_EchoRequest.with { $0.text = "你好" }, metadata: metadata)
        try await echo.get(request: request) { response in
          let message = try response.message
          #expect(message.text == "你好")
          #expect(response.metadata[stringValues: "x-probe"].map { $0 } == ["yuan zhang ~!"])
          #expect(response.metadata[binaryValues: "x-probe-bin"].map { $0 } == [[0, 1, 2, 255]])
          #expect(response.trailingMetadata[stringValues: "x-probe"].map { $0 } == ["yuan zhang ~!"])
        }
      }
    }
  }

  @Test("server streaming delivers every message in order")
  func serverStreaming() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        // 300 messages: more than the 64-message window, so WINDOW_UPDATE must flow.
        let texts = try await echo.expand(.with { $0.text = "x"; $0.repeat = 300 }) { response in
          var indices: [UInt32] = []
          for try await message in response.messages { indices.append(message.index) }
          return indices
        }
        #expect(texts == Array(0..<300))
      }
    }
  }

  @Test("client streaming collects every message")
  func clientStreaming() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        let words = (0..<200).map { "w\($0)" }
        let response = try await echo.collect(
          request: StreamingClientRequest { writer in
            for word in words { try await writer.write(.with { $0.text = word }) }
          })
        #expect(response.text == words.joined(separator: " "))
        #expect(response.index == 200)
      }
    }
  }

  @Test("bidirectional streaming answers each message as it arrives")
  func bidirectional() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        let (requests, continuation) = AsyncStream<String>.makeStream()
        let received = try await echo.update(
          request: StreamingClientRequest { writer in
            for await text in requests { try await writer.write(.with { $0.text = text }) }
          }
        ) { response in
          var received: [String] = []
          continuation.yield("first")
          for try await message in response.messages {
            received.append(message.text)
            // Each answer arrives before the next request is even written.
            if received.count < 150 { continuation.yield("m\(received.count)") } else { continuation.finish() }
          }
          return received
        }
        #expect(received.count == 150)
        #expect(received.first == "first")
        #expect(received.last == "m149")
      }
    }
  }

  @Test("1,000 concurrent calls share one connection and complete out of order")
  func thousandConcurrentCalls() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, _ in
        let order = try await withThrowingTaskGroup(of: Int.self) { group in
          for i in 0..<1000 {
            group.addTask {
              // Later calls wait less, so they overtake earlier ones.
              let delay = UInt32((1000 - i) % 50)
              let response = try await echo.get(.with { $0.text = "\(i)"; $0.delayMs = delay })
              #expect(response.text == "\(i)")
              return i
            }
          }
          var order: [Int] = []
          for try await i in group { order.append(i) }
          return order
        }
        #expect(order.count == 1000)
        #expect(Set(order).count == 1000)
        #expect(order != order.sorted(), "completion order should differ from start order")
        #expect(server.log.peers.count == 1, "all calls used one connection")
        #expect(server.log.maxActive > 1, "calls were multiplexed, not serialized")
        #expect(server.log.maxActive <= WireProtocol.defaultMaxConcurrentStreams)
      }
    }
  }

  @Test("calls beyond the server's concurrency limit wait for a slot instead of failing")
  func concurrencyLimit() async throws {
    try await withTestServer(config: .testing { $0.limits.maxConcurrentStreams = 4 }) { server in
      try await withTestClient(server) { echo, _ in
        try await withThrowingTaskGroup(of: Void.self) { group in
          for i in 0..<40 {
            group.addTask {
              let response = try await echo.get(.with { $0.text = "\(i)"; $0.delayMs = 20 })
              #expect(response.text == "\(i)")
            }
          }
          try await group.waitForAll()
        }
        #expect(server.log.maxActive <= 4)
      }
    }
  }

  @Test("an unknown method gets UNIMPLEMENTED and the connection goes on")
  func unknownMethod() async throws {
    try await withTestServer { server in
      try await withTestClient(server) { echo, client in
        let descriptor = MethodDescriptor(fullyQualifiedService: "pemis.v1.Nowhere", method: "Nothing")
        let error = await #expect(throws: RPCError.self) {
          try await client.unary(
            request: ClientRequest(message: Pemis_V1_EchoRequest()), descriptor: descriptor,
            serializer: ProtobufSerializer<Pemis_V1_EchoRequest>(),
            deserializer: ProtobufDeserializer<Pemis_V1_EchoResponse>(), options: .defaults
          ) { try $0.message }
        }
        #expect(error?.code == .unimplemented)
        let reply8 = try await echo.get(.with { $0.text = "still here" })
        #expect(reply8.text == "still here")
      }
    }
  }
}
