// `dsm import FILE.jsonl... --coordinator HOST:PORT [--run NAME] [--kind K]
// [--atomic]`: checks every line of the JSONL files (docs/jsonl-formats.md)
// first — a bad line is exit 2 with one line "FILE:LINE: field: what is
// wrong" (and how many more bad lines there are), nothing sent — then
// streams the records to Coordinator.ImportRecords and prints what was
// imported.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "services/cli/app.h"
#include "services/coordinator/dataset_import.h"
#include "services/coordinator/jsonl_import.h"

namespace dsm::cli {
namespace {

struct ImportFlags {
  std::vector<std::string> files;
  std::string coordinator;
  std::string run;
  std::string kind = "auto";
  std::string config;  // for TLS and the token
  bool atomic = false;
  double deadline_seconds = 600;
};

int Import(const ImportFlags& flags) {
  JsonlOptions options;
  if (flags.kind == "problem") {
    options.kind = JsonlRecordKind::kProblem;
  } else if (flags.kind == "proof") {
    options.kind = JsonlRecordKind::kProof;
  } else if (flags.kind == "analysis") {
    options.kind = JsonlRecordKind::kAnalysis;
  } else if (flags.kind != "auto") {
    return UsageError("import: --kind: \"" + flags.kind + "\" is not one of auto, problem, proof, analysis");
  }
  std::vector<v1::ImportRecordsRequest> records;
  for (const std::string& file : flags.files) {
    absl::StatusOr<JsonlParseResult> parsed = ParseJsonlFile(file, options);
    if (!parsed.ok()) return UsageError(absl::StrCat("import: ", parsed.status().message()));
    if (parsed->error_count > 0) {
      std::string more = parsed->error_count > 1 ? absl::StrCat(" (and ", parsed->error_count - 1,
                                                                 " more bad lines)")
                                                 : "";
      return UsageError(absl::StrCat("import: ", FormatImportError(parsed->errors.front()), more));
    }
    for (v1::ImportRecordsRequest& r : parsed->records) records.push_back(std::move(r));
  }
  if (records.empty()) return UsageError("import: no records in " + absl::StrJoin(flags.files, ", "));

  ChannelOptions channel;
  if (!flags.config.empty()) {
    absl::StatusOr<DsmConfig> config = LoadConfig(flags.config);
    if (!config.ok()) return UsageError(std::string(config.status().message()));
    channel = ChannelOptions::From(config->server, config->client);
  }
  auto stub = v1::Coordinator::NewStub(MakeChannel(flags.coordinator, channel));
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(flags.deadline_seconds));
  v1::ImportRecordsResponse response;
  auto writer = stub->ImportRecords(&context, &response);
  for (v1::ImportRecordsRequest& r : records) {
    r.set_run_name(flags.run);
    r.set_atomic(flags.atomic);
    if (!writer->Write(r)) break;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) {
    std::cerr << "dsm: import: " << status.error_message() << "\n";
    return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kExitUsage : kExitFailed;
  }
  for (const v1::ImportError& e : response.errors()) std::cerr << "dsm: import: " << FormatImportError(e) << "\n";
  std::cout << "imported " << response.imported() << " of " << response.received() << " records ("
            << response.duplicates() << " duplicates, " << response.error_count() << " errors"
            << (response.committed() ? "" : ", nothing committed") << ")\n";
  return response.error_count() == 0 ? kExitOk : kExitUsage;
}

}  // namespace

void AddImportCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ImportFlags>();
  CLI::App* import = app.add_subcommand(
      "import", "Import problems, labelled proofs and labelled analyses (JSONL) into the coordinator's run");
  import->add_option("FILES", flags->files, "JSONL files (formats: docs/jsonl-formats.md)")->required();
  import->add_option("--coordinator", flags->coordinator, "Coordinator host:port")->required();
  import->add_option("--run", flags->run, "Run name (default: the run the coordinator serves)");
  import->add_option("--kind", flags->kind, "Record kind of every line: auto (default), problem, proof, analysis");
  import->add_flag("--atomic", flags->atomic, "Import all records or none");
  import->add_option("--config", flags->config, "A config whose TLS settings and token the call uses");
  import->add_option("--deadline", flags->deadline_seconds, "Seconds the import may take (default 600)");
  import->callback([action, flags] { *action = [flags] { return Import(*flags); }; });
}

}  // namespace dsm::cli
