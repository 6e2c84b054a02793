using SparseInference.Serving.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSparseInference(builder.Configuration);

var app = builder.Build();
app.MapSparseInference();
app.Run();

public partial class Program;
