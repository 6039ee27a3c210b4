import ArgumentParser
import GRPCCore
import PEMISClient
import PEMISProto
import SwiftProtobuf

/// Diagnostic: sends text to the Echo service, to check a connection end to end.
struct EchoCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo",
    abstract: "Diagnostic: have the server echo text back (unary, or one word per response with --expand).")

  @OptionGroup var connection: ConnectionOptions

  @Argument(help: "The text to send.")
  var text: String

  @Flag(help: "Use the server-streaming method: one response per word.")
  var expand = false

  @Option(help: "Ask the server to wait this many milliseconds before answering.")
  var delayMs: UInt32 = 0

  func run() async throws {
    let address = try connection.address()
    try await runReportingFailure {
      try await connection.withClient(address) { client in
        let echo = Pemis_V1_Echo.Client(wrapping: client)
        let request = Pemis_V1_EchoRequest.with {
          $0.text = text
          $0.delayMs = delayMs
        }
        if expand {
          try await echo.expand(request, options: connection.callOptions) { response in
            for try await message in response.messages { print(message.text) }
          }
        } else {
          print(try await echo.get(request, options: connection.callOptions).text)
        }
      }
    }
  }
}
