// Runs the cases tests/onnx/ort_cases.c wrote through ONNX Runtime (CPU,
// one intra-op thread) and compares each output with libae's: the full
// model's reconstruction and code, the encoder's code (and a VAE's
// log-variance), the decoder's output on libae's code. The error measure is
// max |ort - libae| / max |libae| over the whole output (relative to its
// scale, so outputs near zero do not inflate it), and must be <= 1e-5.
//
// Usage: node check_ort.js DIR   (NODE_PATH must reach onnxruntime-node)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const TOL = 1e-5;
const dir = process.argv[2];
const cases = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));

function read(name, what) {
  const b = fs.readFileSync(path.join(dir, `${name}.${what}.bin`));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

function relErr(got, want) {
  if (got.length !== want.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= num)) num = d; // NaN propagates as a failure
    den = Math.max(den, Math.abs(want[i]));
  }
  return den > 0 ? num / den : num;
}

async function run(file, inputName, data, batch) {
  const s = await ort.InferenceSession.create(file, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
  });
  const meta = s.inputMetadata.find((v) => v.name === inputName);
  if (!meta) throw new Error(`${file}: no input named ${inputName}`);
  const dims = meta.shape.map((d, i) => (i === 0 ? batch : d));
  const feeds = {};
  feeds[inputName] = new ort.Tensor('float32', data, dims);
  return s.run(feeds);
}

async function main() {
  let failed = 0, checked = 0, worst = 0;
  const report = (c, what, got, want) => {
    const e = relErr(got, want);
    checked++;
    worst = Math.max(worst, e);
    const ok = e <= TOL;
    if (!ok) failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${c.name} ${what}: rel err ${e.toExponential(2)}`);
  };
  for (const c of cases) {
    const x = read(c.name, 'input'), code = read(c.name, 'code');
    const full = await run(path.join(dir, `${c.name}.full.onnx`), 'input', x, c.batch);
    report(c, 'full/reconstruction', full.reconstruction.data, read(c.name, 'reconstruction'));
    report(c, 'full/code', full.code.data, code);
    const enc = await run(path.join(dir, `${c.name}.encoder.onnx`), 'input', x, c.batch);
    report(c, 'encoder/code', enc.code.data, code);
    if (c.vae) {
      report(c, 'encoder/logvar', enc.logvar.data, read(c.name, 'logvar'));
      report(c, 'full/logvar', full.logvar.data, read(c.name, 'logvar'));
    }
    const dec = await run(path.join(dir, `${c.name}.decoder.onnx`), 'code', code, c.batch);
    report(c, 'decoder/reconstruction', dec.reconstruction.data, read(c.name, 'decoded'));
  }
  console.log(`check_ort: ${cases.length} models, ${checked} outputs, worst rel err ` +
              `${worst.toExponential(2)} (tolerance ${TOL}), ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`check_ort: ${e.stack || e}`);
  process.exit(1);
});
