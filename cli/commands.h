/* commands.h: one entry point per `clasp` subcommand. Each returns the process exit code
 * (0 ok, 1 runtime error, 2 usage error) and prints its own --help. */
#ifndef CLASP_CLI_COMMANDS_H
#define CLASP_CLI_COMMANDS_H

/* Declarations, one per command, sorted. */
int clasp_cmd_drift(int argc, char **argv);
int clasp_cmd_embed(int argc, char **argv);
int clasp_cmd_eval(int argc, char **argv);
int clasp_cmd_export(int argc, char **argv);
int clasp_cmd_import_openclip(int argc, char **argv);
int clasp_cmd_index_add(int argc, char **argv);
int clasp_cmd_index_build(int argc, char **argv);
int clasp_cmd_index_eval(int argc, char **argv);
int clasp_cmd_index_info(int argc, char **argv);
int clasp_cmd_report(int argc, char **argv);
int clasp_cmd_search(int argc, char **argv);
int clasp_cmd_serve(int argc, char **argv);
int clasp_cmd_shards_build(int argc, char **argv);
int clasp_cmd_shards_inspect(int argc, char **argv);
int clasp_cmd_tokenizer_encode(int argc, char **argv);
int clasp_cmd_tokenizer_train(int argc, char **argv);

int clasp_cmd_train(int argc, char **argv);

#endif
