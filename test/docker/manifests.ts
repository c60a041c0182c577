// docker/kubernetes/causeway.yaml as the tests read it: the kubernetes tests check it, the image
// test runs its init container's step.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './tools.js';

export const MANIFESTS = 'docker/kubernetes/causeway.yaml';

export interface Container {
  image: string;
  command?: string[];
  securityContext: {
    runAsUser: number;
    runAsGroup?: number;
    runAsNonRoot?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities: { add: string[]; drop: string[] };
  };
  volumeMounts: { name: string; mountPath: string }[];
}

export interface Resource {
  kind: string;
  data?: Record<string, string>;
  spec?: {
    template: {
      spec: {
        hostPID?: boolean;
        terminationGracePeriodSeconds?: number;
        initContainers: Container[];
        containers: (Container & {
          args: string[];
          livenessProbe?: unknown;
          readinessProbe?: unknown;
          resources: { requests: Record<string, string>; limits: Record<string, string> };
        })[];
        volumes: {
          name: string;
          hostPath?: { path: string };
          secret?: { secretName: string };
          configMap?: { name: string };
        }[];
      };
    };
  };
}

export const resources = () =>
  parseAllDocuments(readFileSync(join(ROOT, MANIFESTS), 'utf8')).map((d) => d.toJS() as Resource);
export const daemonSet = () => resources().find((r) => r.kind === 'DaemonSet')?.spec?.template.spec;
