import ArgumentParser

/// `pemis-load`: drives a PEMIS server with synthetic work and reports throughput and latency.
/// `echo` measures the transport; `seed-district` builds a synthetic district offline; `transfers`,
/// `kill-harness`, `district-summary`, `first-call` and `children-csv` drive the rest.
@main
struct PEMISLoadCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pemis-load",
    abstract: "Load generator for PEMIS servers (loopback or test hosts only).",
    version: "pemis-load 0.1.0",
    subcommands: [EchoLoad.self, SeedDistrict.self, FirstCall.self, ChildrenCSV.self, TransferLoad.self, KillHarness.self, DistrictSummaryLoad.self, DuplicateSweepLoad.self, ShardingLoad.self, DoorLoad.self, LoginFlood.self])
}
