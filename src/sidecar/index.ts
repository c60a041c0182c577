// The sidecar (`causeway run`): its configuration and its composition root.
export {
  CONFIG_FLAGS,
  CONFIG_KEYS,
  ConfigError,
  DEFAULT_CONFIG,
  sidecarConfig,
  type ConfigSources,
  type SidecarConfig,
} from './config.js';
export {
  DEFAULT_EXPORT_URL,
  exportUrl,
  startSidecar,
  type ShutdownReport,
  type Sidecar,
  type SidecarOptions,
} from './sidecar.js';
export { StartError } from './startup.js';
export type { SidecarStatus } from './status.js';
