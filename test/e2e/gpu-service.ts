// The GPU service app (test/fixtures/apps/python_gpu_service.py): a "handle-request" span around a
// kernel launch and a cudaStreamSynchronize on the simulated CUDA runtime, made once the sidecar
// follows the app as a GPU process.
import { join } from 'node:path';
import { ROOT, SIM_CUDART, childrenOf, startWorkload } from '../bpf/session.js';
import { until, type Sidecar } from '../cli/sidecar.js';
import { pythonBin } from './backends.js';

const APP = join(ROOT, 'test', 'fixtures', 'apps', 'python_gpu_service.py');

/** What the app prints once its request span is exported. */
export interface GpuServiceTruth {
  trace_id: string;
  span_id: string;
  /** As the app sees itself: in a pid namespace of its own, not the host's. */
  pid: number;
  tid: number;
  stream: string;
}

/** Process `pid` and every process under it, parents before children; none once it is gone. */
function treeOf(pid: number): number[] {
  let children: number[];
  try {
    children = childrenOf(pid);
  } catch {
    return []; // gone
  }
  return [pid, ...children.flatMap(treeOf)];
}

/**
 * Runs the app with kernels of `kernelMs`, `env` added to its environment (its OTLP endpoint), under
 * `wrapper` if given (a command line that runs it in a pid namespace of its own). It makes its
 * request once the sidecar's log says it follows the app (or a process under the wrapper) as a GPU
 * process, its probes on the app's libcudart attached: a fixed wait before that (1.5 s) was missed
 * now and then on a loaded machine, the request then made before the sidecar followed it.
 */
export async function runGpuService(
  sidecar: Pick<Sidecar, 'log'>,
  kernelMs: number,
  env: Record<string, string>,
  wrapper: string[] = [],
): Promise<GpuServiceTruth> {
  const app = startWorkload(pythonBin, [APP, SIM_CUDART, String(kernelMs)], env, wrapper);
  const exited = () => app.child.exitCode !== null || app.child.signalCode !== null;
  try {
    await until(`the sidecar to follow the GPU service (pid ${String(app.pid)})`, 20_000, () => {
      const followed = [...sidecar.log().matchAll(/GPU process (\d+) \(/g)].map((m) => Number(m[1]));
      // An app that failed says why in app.truth.
      const tree = treeOf(app.pid);
      return exited() || followed.some((pid) => tree.includes(pid)) ? true : undefined;
    });
  } catch (error) {
    // Children first: a kill of the wrapper alone leaves the app it forked running.
    for (const pid of treeOf(app.pid).reverse())
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    await app.truth.catch(() => undefined); // gone, with what it held (a cgroup, this test's pipes)
    throw new Error(`${(error as Error).message}; the sidecar's log:\n${sidecar.log()}`);
  }
  app.child.stdin.end('go\n');
  return (await app.truth) as unknown as GpuServiceTruth;
}
