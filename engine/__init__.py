"""sybar's engine: everything that moves or keeps backup data. Never imports Qt."""

__version__ = "0.1.0"
