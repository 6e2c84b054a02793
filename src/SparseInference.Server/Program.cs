using SparseInference.Server.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddSparseInferenceHost();

var app = builder.Build();
app.MapSparseInferenceHost();
app.Run();

public partial class Program;
