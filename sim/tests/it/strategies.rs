//! Deployment strategies in whole simulated scenarios (filled in by the strategies work).
