"""Operations: backup and restore of every store, `ailab doctor`, safe upgrades."""
